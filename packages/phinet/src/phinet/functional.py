"""Pure reference math of PhiNet (arXiv 2405.14650): losses, the EMA update, monitors, the lr schedule.

Notation (paper Sec. 3, Fig. 1): f = backbone + projector, h = CA3 predictor, g = CA1 predictor.
For two augmented views x1, x2 and the "original" view x_ori::

    z_i = f(x_i)            (B, d)
    p_i = h(z_i)            (B, d)
    y_i = g(p_i)            (B, d)
    z_ori = f(x_ori)        PhiNet;  f_ema(x_ori) for X-PhiNet

    Sim-1 = 1/2 D(p1, sg z2) + 1/2 D(p2, sg z1),    D = negative cosine similarity      (Eq. 1, SimSiam)
    Sim-2 = 1/2 MSE(y1, sg z_ori) + 1/2 MSE(y2, sg z_ori)                               (Eq. 2)
    L     = Sim-1 + lambda * Sim-2

MSE is ``nn.MSELoss`` (mean over batch *and* features) on unnormalised vectors, as in the official code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from papercommon.metrics import (
    knn_accuracy as knn_accuracy,  # re-export: the shared cosine-weighted kNN monitor
)
from torch import Tensor


def _check_pair(a: Tensor, b: Tensor, names: str) -> None:
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"{names}: expected two (batch, dim) tensors of the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) = -mean_b cos(p_b, z_b). Does *not* stop gradients; the losses below do.

    Args:
        p: (B, d) predictions.
        z: (B, d) targets.
    """
    _check_pair(p, z, "negative_cosine")
    return -(F.normalize(p, dim=-1) * F.normalize(z, dim=-1)).sum(-1).mean()


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """Sim-1, SimSiam's symmetrised loss: 1/2 D(p1, sg z2) + 1/2 D(p2, sg z1)  (paper Eq. 1)."""
    return 0.5 * negative_cosine(p1, z2.detach()) + 0.5 * negative_cosine(p2, z1.detach())


def sim2_loss(y1: Tensor, y2: Tensor, z_ori: Tensor, kind: str = "mse") -> Tensor:
    """Sim-2, the CA1 term: 1/2 M(y1, sg z_ori) + 1/2 M(y2, sg z_ori)  (paper Eq. 2).

    Args:
        y1, y2: (B, d) CA1 outputs g(h(f(x_i))).
        z_ori: (B, d) representation of the original view (stop-gradient applied here).
        kind: "mse" (``nn.MSELoss``, mean over all elements; the paper's choice) or "cos" (negative cosine,
            ``PhiNetCos``).
    """
    _check_pair(y1, z_ori, "sim2_loss(y1, z_ori)")
    _check_pair(y2, z_ori, "sim2_loss(y2, z_ori)")
    t = z_ori.detach()
    if kind == "mse":
        return 0.5 * F.mse_loss(y1, t) + 0.5 * F.mse_loss(y2, t)
    if kind == "cos":
        return 0.5 * negative_cosine(y1, t) + 0.5 * negative_cosine(y2, t)
    raise ValueError(f"kind must be 'mse' or 'cos', got {kind!r}")


def phinet_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor, y1: Tensor, y2: Tensor, z_ori: Tensor,
                sim2_weight: float = 1.0, kind: str = "mse") -> tuple[Tensor, Tensor, Tensor]:
    """PhiNet's loss L = Sim-1 + lambda * Sim-2.

    Returns:
        (loss, sim1, sim2); sim1 and sim2 are the unweighted terms.
    """
    s1 = simsiam_loss(p1, p2, z1, z2)
    s2 = sim2_loss(y1, y2, z_ori, kind)
    return s1 + sim2_weight * s2, s1, s2


def byol_loss(p1: Tensor, p2: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
    """BYOL's symmetrised normalised MSE, 1/2 (2 - 2cos(p1, sg t2)) + 1/2 (2 - 2cos(p2, sg t1))."""
    return 2.0 + 2.0 * simsiam_loss(p1, p2, t1, t2)


# ----------------------------------------------------------------------------------------- EMA update

def _check_beta(beta: float) -> None:
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta (EMA rate) must lie in [0, 1], got {beta}")


@torch.no_grad()
def ema_update_reference(target: Iterable[Tensor], online: Iterable[Tensor], beta: float) -> None:
    """theta_ema <- beta * theta_ema + (1 - beta) * theta, one tensor at a time (in place)."""
    _check_beta(beta)
    for t, o in zip(target, online, strict=True):
        t.mul_(beta).add_(o.detach(), alpha=1.0 - beta)


@torch.no_grad()
def ema_update_(target: Iterable[Tensor], online: Iterable[Tensor], beta: float) -> None:
    """The same update as :func:`ema_update_reference`, fused over all tensors with ``torch._foreach_lerp_``.

    lerp(t, o, w) = t + w (o - t) = (1 - w) t + w o, so w = 1 - beta.
    """
    _check_beta(beta)
    target, online = list(target), [o.detach() for o in online]
    if len(target) != len(online):
        raise ValueError(f"EMA needs as many target as online tensors, got {len(target)} and {len(online)}")
    if target:
        torch._foreach_lerp_(target, online, 1.0 - beta)


# ----------------------------------------------------------------------------------------- monitors

def collapse_std(z: Tensor) -> Tensor:
    """The collapse gauge: the mean over dimensions of the batch std of l2-normalised z (SimSiam Sec. 4.1).

    About 1/sqrt(d) for well-spread representations, 0 for complete collapse (every z the same direction).

    Args:
        z: (B, d) with B >= 2.
    """
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"collapse_std expects (batch >= 2, dim) features, got {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("collapse_std: expected finite features, got NaN or inf (the run diverged)")
    return F.normalize(z.float(), dim=-1).std(dim=0).mean()


def effective_rank(z: Tensor, eps: float = 1e-12) -> Tensor:
    """Effective rank (Roy & Vetterli 2007) of a batch of representations ``z`` (N, d): exp of the entropy of
    the normalised singular values of the centred batch. ``d`` for isotropic features, 1 for a single
    direction, and it falls with dimensional collapse, which the per-dimension std gauge misses when the
    surviving directions keep their scale."""
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"z: expected (N >= 2, d) representations, got shape {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z: expected finite representations, got NaN or inf (the run diverged)")
    s = torch.linalg.svdvals((z - z.mean(0)).double())
    if s.sum() <= eps:
        return torch.tensor(0.0, dtype=z.dtype)  # every sample the same point: fully collapsed
    p = s / s.sum()
    return torch.exp(-(p * torch.log(p.clamp_min(eps))).sum()).to(z.dtype)


def knn_predict_reference(query: Tensor, bank: Tensor, bank_labels: Tensor, num_classes: int, k: int = 200,
                          temperature: float = 0.1) -> Tensor:
    """Cosine-weighted kNN vote, one query at a time (the slow reference of :func:`knn_predict`).

    Each of the k most cosine-similar bank items votes for its label with weight exp(sim / temperature);
    returns (Q, num_classes) scores.
    """
    q = F.normalize(query.float(), dim=-1)
    b = F.normalize(bank.float(), dim=-1)
    k = min(k, b.shape[0])
    out = torch.zeros(q.shape[0], num_classes)
    for i in range(q.shape[0]):
        sim = b @ q[i]
        top, idx = sim.topk(k)
        for s, j in zip(top.tolist(), idx.tolist()):
            out[i, bank_labels[j]] += math.exp(s / temperature)
    return out


def knn_predict(query: Tensor, bank: Tensor, bank_labels: Tensor, num_classes: int, k: int = 200,
                temperature: float = 0.1, chunk: int = 1024) -> Tensor:
    """Cosine-weighted kNN class scores (the monitor of the official code, ``tools/knn_monitor.py``).

    Vectorised over queries in chunks of ``chunk``.

    Args:
        query: (Q, d) features to classify.
        bank: (N, d) labelled features.
        bank_labels: (N,) int labels in [0, num_classes).
        num_classes: C.
        k: neighbours (capped at N).
        temperature: vote weight exp(sim / temperature).

    Returns:
        (Q, C) scores; argmax is the prediction.
    """
    if query.dim() != 2 or bank.dim() != 2 or query.shape[1] != bank.shape[1]:
        raise ValueError(f"knn_predict expects (Q, d) and (N, d) features, got {tuple(query.shape)} and "
                         f"{tuple(bank.shape)}")
    if bank_labels.shape != (bank.shape[0],):
        raise ValueError(f"bank_labels must have shape ({bank.shape[0]},), got {tuple(bank_labels.shape)}")
    b = F.normalize(bank.float(), dim=-1)
    k = min(k, b.shape[0])
    labels = bank_labels.long().to(b.device)
    outs = []
    for q in F.normalize(query.float(), dim=-1).split(chunk):
        sim, idx = (q @ b.T).topk(k, dim=-1)                            # (q, k)
        w = (sim / temperature).exp()                                   # (q, k)
        scores = torch.zeros(q.shape[0], num_classes, device=b.device)
        scores.scatter_add_(1, labels[idx], w)                          # (q, C)
        outs.append(scores)
    return torch.cat(outs)


# ----------------------------------------------------------------------------------------- schedule

def warmup_cosine_lr(step: int, total_steps: int, warmup_steps: int, peak_lr: float, final_lr: float = 0.0) -> float:
    """Linear warm-up from 0 to ``peak_lr`` over ``warmup_steps``, then cosine decay to ``final_lr``.

    The SimSiam-codebase ``LR_Scheduler`` (per iteration) the official code uses.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, got {total_steps}, "
                         f"{warmup_steps}")
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final_lr + 0.5 * (peak_lr - final_lr) * (1 + math.cos(math.pi * min(t, 1.0)))
