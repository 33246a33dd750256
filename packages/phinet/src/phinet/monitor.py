"""Monitors: features, cosine-weighted kNN accuracy, the linear probe and the collapse-gauge callback.

The collapse gauge (SimSiam Sec. 4.1; the PhiNet paper's robustness claim) is the mean per-dimension std of
l2-normalised projections: about 1/sqrt(d) when healthy, 0 at complete collapse. :class:`CollapseMonitor`
exposes it as a training callback that can also stop a collapsed run early.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phinet import functional as PF


@torch.no_grad()
def extract(fn: Callable[[Tensor], Tensor], X: Tensor, batch_size: int = 512, device: str | torch.device = "cpu") -> Tensor:
    """``fn`` applied to X in batches, concatenated on the CPU."""
    return torch.cat([fn(x.to(device)).float().cpu() for x in X.split(batch_size)])


@torch.no_grad()
def features(model: nn.Module, X: Tensor, batch_size: int = 512, device: str | torch.device = "cpu",
             which: str = "backbone") -> Tensor:
    """Frozen features in eval mode: ``"backbone"`` (what kNN / the probe read) or ``"projection"`` (z)."""
    was = model.training
    model.eval()
    try:
        fn = model.backbone if which == "backbone" else model.encoder  # type: ignore[union-attr]
        if which not in ("backbone", "projection"):
            raise ValueError(f"which must be 'backbone' or 'projection', got {which!r}")
        return extract(fn, X, batch_size, device)
    finally:
        model.train(was)


def linear_probe(train_f: Tensor, train_y: Tensor, test_f: Tensor, test_y: Tensor, *, epochs: int = 100,
                 lr: float = 30.0, batch_size: int = 256, momentum: float = 0.9, seed: int = 0,
                 standardize: bool = True) -> float:
    """Top-1 accuracy of a linear classifier trained on frozen features (SGD, cosine lr, weight decay 0).

    The official ``linear_eval`` uses lr 30 on the backbone's features; ``standardize`` first scales each
    feature to zero mean and unit variance with the training statistics (a BatchNorm without affine), which
    makes that lr stable across backbones.
    """
    if standardize:
        mu, sd = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
        train_f, test_f = (train_f - mu) / sd, (test_f - mu) / sd
    g = torch.Generator().manual_seed(seed)
    c = int(max(train_y.max(), test_y.max())) + 1
    clf = nn.Linear(train_f.shape[1], c)
    with torch.no_grad():
        clf.weight.normal_(0, 0.01, generator=g)
        clf.bias.zero_()
    opt = torch.optim.SGD(clf.parameters(), lr=lr * batch_size / 256, momentum=momentum)
    n = train_f.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=g).split(batch_size):
            loss = F.cross_entropy(clf(train_f[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return (clf(test_f).argmax(-1) == test_y).float().mean().item()


class Callback:
    """Training hooks. ``on_step`` runs after every optimiser step; returning True stops training."""

    def on_step(self, trainer, step: int, out) -> bool | None:  # noqa: ANN001
        return None

    def on_eval(self, trainer, epoch: int, metrics: dict) -> None:  # noqa: ANN001
        return None


@dataclass
class CollapseMonitor(Callback):
    """Tracks the collapse gauge std(normalize(z1)) during training.

    Args:
        every: record every this many steps.
        smoothing: EMA factor of the running value (SimSiam's plot uses a running average).
        stop_below: stop training when the smoothed gauge falls below ``stop_below / sqrt(d)`` (None: never).
    """

    every: int = 1
    smoothing: float = 0.9
    stop_below: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    value: float | None = None
    dim: int | None = None

    def on_step(self, trainer, step: int, out) -> bool:  # noqa: ANN001
        if step % self.every:
            return False
        s = PF.collapse_std(out.z1).item()
        self.value = s if self.value is None else self.smoothing * self.value + (1 - self.smoothing) * s
        self.history.append((step, self.value))
        self.dim = d = out.z1.shape[1]
        return self.stop_below is not None and self.value < self.stop_below / math.sqrt(d)

    @property
    def collapsed(self) -> bool:
        """Whether the last smoothed value is below 10% of the healthy 1/sqrt(d) level."""
        return False if self.value is None else bool(self.value < 0.1 / math.sqrt(self.dim))


@dataclass
class HistoryLogger(Callback):
    """Records loss, Sim-1, Sim-2 and lr every ``every`` steps."""

    every: int = 10
    rows: list[dict] = field(default_factory=list)

    def on_step(self, trainer, step: int, out) -> bool:  # noqa: ANN001
        if step % self.every == 0:
            self.rows.append({"step": step, "loss": out.loss.item(), "sim1": out.sim1.item(),
                              "sim2": float(out.sim2), "lr": trainer.optimizer.param_groups[0]["lr"]})
        return False
