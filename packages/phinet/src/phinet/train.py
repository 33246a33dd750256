"""Training: offline (epochs over a data set), online (one pass over a stream) and continual (tasks in sequence).

The optimiser is the official code's: SGD with momentum 0.9, lr = base_lr * batch / 256, linear warm-up then
cosine decay to 0 (per iteration), weight decay on every parameter, and the CA3 predictor h held at the peak lr
(``constant_predictor_lr``; official ``main.py`` and ``optimizers/__init__.py``).

Example:
    >>> from phinet import ModelConfig, TrainConfig, Trainer, load_images
    >>> X, y = load_images("digits")
    >>> tr = Trainer(ModelConfig.small("phinet"), TrainConfig(epochs=2, batch_size=128, warmup_epochs=0))
    >>> tr.fit(X)
    >>> tr.evaluate(X, y, *load_images("digits", "test"))["knn_acc"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from papercommon.metrics import knn_accuracy
from torch import Tensor
from tqdm.auto import tqdm

from phinet import functional as PF
from phinet.augment import BatchAugment
from phinet.config import ModelConfig, TrainConfig
from phinet.models import SSLModel, build_model
from phinet.monitor import Callback, features, linear_probe


class Trainer:
    """Holds a model, its optimiser and the augmentation; trains in the three settings of the paper.

    Args:
        model_cfg: what to build.
        train_cfg: how to train.
        augment: a :class:`BatchAugment` (default: the "small" preset for 1-channel data, "cifar" otherwise).
        device: where to train.
        callbacks: :class:`~phinet.monitor.Callback` s (e.g. :class:`~phinet.monitor.CollapseMonitor`).
        progress: show tqdm bars.
    """

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, augment: BatchAugment | None = None,
                 device: str | torch.device = "cpu", callbacks: Sequence[Callback] = (), progress: bool = True):
        self.model_cfg, self.cfg = model_cfg, train_cfg
        if train_cfg.num_threads:
            torch.set_num_threads(train_cfg.num_threads)
        torch.manual_seed(train_cfg.seed)
        self.device = torch.device(device)
        self.model: SSLModel = build_model(model_cfg).to(self.device)
        h = getattr(self.model, "h", None)
        pred_ids = {id(p) for p in h.parameters()} if h is not None else set()
        groups = [{"name": "base", "params": [p for p in self.model.parameters() if id(p) not in pred_ids]},
                  {"name": "predictor", "params": [p for p in self.model.parameters() if id(p) in pred_ids]}]
        self.optimizer = torch.optim.SGD([g for g in groups if g["params"]], lr=train_cfg.lr,
                                         momentum=train_cfg.momentum, weight_decay=train_cfg.weight_decay)
        preset = "small" if model_cfg.in_channels == 1 else "cifar"
        self.augment = augment or BatchAugment.preset(preset, model_cfg.image_size)
        self.generator = torch.Generator().manual_seed(train_cfg.seed)
        self.callbacks = list(callbacks)
        self.progress = progress
        self.step = 0
        self.log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ one step
    def train_step(self, x: Tensor, lr: float) -> Any:
        """One SGD step on a batch of raw images (augmented here) at the scheduled ``lr``. Returns the SSLOutput.

        With ``constant_predictor_lr`` the predictor group stays at the peak lr, as in the official scheduler.
        """
        for g in self.optimizer.param_groups:
            g["lr"] = self.cfg.lr if self.cfg.constant_predictor_lr and g.get("name") == "predictor" else lr
        x = x.to(self.device)
        x1, x2, x0 = self.augment(x, self.generator)
        if self.model_cfg.augmented_third_view:
            x0 = self.augment.view(x, self.generator)  # official *_aug: a third random view (TriSiamTransform)
        out = self.model(x1, x2, x0 if self.model.needs_original_view else None)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"loss became {out.loss.item()} at step {self.step}; lower the lr")
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        self.model.update_target()
        self.step += 1
        return out

    def _check_data(self, X: Tensor) -> None:
        m = self.model_cfg
        if not isinstance(X, Tensor):
            raise TypeError(f"images: expected a torch.Tensor (N, C, H, W), got {type(X).__name__}")
        if not X.is_floating_point():
            raise TypeError(f"images: expected floating-point pixels in [0, 1], got dtype {X.dtype} "
                            "(convert uint8 images with X.float() / 255)")
        if not bool(torch.isfinite(X).all()):
            raise ValueError("images: expected finite pixel values, got NaN or inf")
        if X.dim() != 4 or tuple(X.shape[1:]) != (m.in_channels, m.image_size, m.image_size):
            raise ValueError(f"expected images (N, {m.in_channels}, {m.image_size}, {m.image_size}), got "
                             f"{tuple(X.shape)}")
        if X.shape[0] < self.cfg.batch_size:
            raise ValueError(f"need at least batch_size={self.cfg.batch_size} images (the last partial batch is "
                             f"dropped, as BatchNorm needs full batches), got {X.shape[0]}")

    def _run(self, batches: Iterable[Tensor], total: int, warmup_steps: int, desc: str,
             on_epoch: Callable[[int], None] | None = None, steps_per_epoch: int | None = None) -> bool:
        self.model.train()
        bar = tqdm(batches, total=total, desc=desc, disable=not self.progress, leave=False)
        for i, xb in enumerate(bar):
            lr = PF.warmup_cosine_lr(i, total, warmup_steps, self.cfg.lr, self.cfg.final_lr)
            out = self.train_step(xb, lr)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{out.loss.item():.3f}", sim2=f"{float(out.sim2):.3f}")
            stop = any(bool(cb.on_step(self, self.step, out)) for cb in self.callbacks)
            if stop:
                return True
            if on_epoch and steps_per_epoch and (i + 1) % steps_per_epoch == 0:
                on_epoch((i + 1) // steps_per_epoch)
        return False

    # ------------------------------------------------------------------ settings
    def fit(self, X: Tensor, epochs: int | None = None, eval_fn: Callable[[int], dict] | None = None,
            epoch_fn: Callable[[int], None] | None = None) -> Trainer:
        """Offline training: ``epochs`` (default ``cfg.epochs``) shuffled passes, last partial batch dropped.

        ``eval_fn(epoch)`` runs every ``cfg.eval_every`` epochs; its dict goes to ``self.log``.
        ``epoch_fn(epoch)`` runs after every epoch (e.g. checkpointing).
        """
        self._check_data(X)
        epochs = epochs or self.cfg.epochs
        bs, n = self.cfg.batch_size, X.shape[0]
        spe = n // bs
        total = epochs * spe

        def batches() -> Iterator[Tensor]:  # lazily: one epoch's permutation at a time
            for _ in range(epochs):
                for idx in torch.randperm(n, generator=self.generator)[: spe * bs].split(bs):
                    yield X[idx]

        warm = min(int(round(self.cfg.warmup_epochs * spe)), total)

        def on_epoch(ep: int) -> None:
            if epoch_fn:
                epoch_fn(ep)
            if eval_fn and self.cfg.eval_every and ep % self.cfg.eval_every == 0:
                row = {"epoch": ep, "step": self.step, **eval_fn(ep)}
                self.log.append(row)
                for cb in self.callbacks:
                    cb.on_eval(self, ep, row)

        self._run(batches(), total, warm, "fit", on_epoch, spe)
        return self

    def fit_online(self, stream: Tensor, warmup_frac: float | None = None) -> Trainer:
        """Online learning: one pass over ``stream`` in its order, each image seen once (paper Sec. 5.2).

        The lr schedule spans the stream; warm-up covers ``warmup_frac`` of it (default: the fraction
        ``warmup_epochs / epochs`` of the offline schedule).
        """
        self._check_data(stream)
        bs = self.cfg.batch_size
        batches = list(stream[: (stream.shape[0] // bs) * bs].split(bs))
        frac = self.cfg.warmup_epochs / self.cfg.epochs if warmup_frac is None else warmup_frac
        self._run(batches, len(batches), int(frac * len(batches)), "online")
        return self

    def fit_continual(self, tasks: Sequence[Tensor], epochs_per_task: int,
                      after_task: Callable[[int], dict] | None = None) -> list[dict]:
        """Continual learning: train on each task's images in turn (no replay), ``after_task(t)`` after each.

        The lr schedule (warm-up + cosine) restarts for every task; the weights and the optimiser's momentum
        carry over, as in LUMP's and CaSSLe's protocols.
        """
        rows = []
        for t, Xt in enumerate(tasks):
            self.fit(Xt, epochs=epochs_per_task)
            if after_task:
                rows.append({"task": t, **after_task(t)})
        return rows

    # ------------------------------------------------------------------ evaluation and checkpoints
    def prepare(self, X: Tensor) -> Tensor:
        """Images as the encoder sees them at evaluation (the augmentation's normalisation, no crop)."""
        return self.augment._norm(X.to(self.device))

    def features(self, X: Tensor, which: str = "backbone") -> Tensor:
        return features(self.model, self.prepare(X), device=self.device, which=which)

    def evaluate(self, X_train: Tensor, y_train: Tensor, X_test: Tensor, y_test: Tensor, probe: bool = False) -> dict:
        """kNN accuracy (cosine, weighted, k and temperature from the config), the collapse gauge on the test
        projections, and optionally the linear probe."""
        ftr, fte = self.features(X_train), self.features(X_test)
        res = {"knn_acc": knn_accuracy(ftr, y_train, fte, y_test, k=self.cfg.knn_k,
                                         temperature=self.cfg.knn_temperature),
               "collapse_std": PF.collapse_std(self.features(X_test, "projection")).item(),
               "effective_rank": PF.effective_rank(fte).item(),
               "healthy_std": 1 / math.sqrt(self.model_cfg.proj_dim)}
        if probe:
            res["probe_acc"] = linear_probe(ftr, y_train, fte, y_test, epochs=self.cfg.probe_epochs,
                                            lr=self.cfg.probe_lr, batch_size=self.cfg.probe_batch_size,
                                            seed=self.cfg.seed)
        return res

    def save(self, path: str | Path) -> None:
        """Checkpoint: configs, weights, optimiser, step, RNG state and log."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model_cfg": self.model_cfg.to_dict(), "train_cfg": self.cfg.to_dict(),
                    "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "step": self.step, "generator": self.generator.get_state(), "log": self.log,
                    "saved_at": time.time()}, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", **kw: Any) -> Trainer:
        """Rebuild a :class:`Trainer` from :meth:`save`'s file (loaded with ``weights_only=True``).

        A missing file, a file torch cannot read safely, or a checkpoint of another program raises an error
        naming the path.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Trainer.load: no checkpoint at {path}")
        try:
            ck = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 - pickle, zip and weights-only errors all mean "not ours"
            raise ValueError(f"Trainer.load: {path} is not a readable phinet checkpoint ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
        need = {"model_cfg", "train_cfg", "model", "optimizer", "step", "generator", "log"}
        if not isinstance(ck, dict) or not need <= set(ck):
            got = sorted(ck) if isinstance(ck, dict) else type(ck).__name__
            raise ValueError(f"Trainer.load: {path} is not a phinet checkpoint: expected keys {sorted(need)}, "
                             f"got {got}")
        tr = cls(ModelConfig.from_dict(ck["model_cfg"]), TrainConfig.from_dict(ck["train_cfg"]), device=device, **kw)
        tr.model.load_state_dict(ck["model"])
        tr.optimizer.load_state_dict(ck["optimizer"])
        tr.step, tr.log = ck["step"], ck["log"]
        tr.generator.set_state(ck["generator"])
        return tr
