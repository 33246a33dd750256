"""Single-model (robust) aggregators: the baselines LiD-FL is compared with.

Fast versions take a batch of runs, ``updates (R, n, d) -> (R, d)``; each ``<name>_reference`` takes one
run ``(n, d) -> (d,)`` and follows the official ``federatedFrameW/utils/aggr_utils.py`` line by line
(Python loops, NumPy semantics) so the tests can hold the fast versions to it.

* ``fedavg``: mean (``ra_FedAvg`` with unit weights).
* ``median``: coordinate-wise median, averaging the two middle values for even n (``np.median``; CWM).
* ``trimmed_mean``: coordinate-wise mean after dropping t = min(ceil(beta n), (n - 1) // 2) values per side
  (``ra_CWTM``; the official cap is n // 2, which leaves nothing for even n, so we keep one value).
* ``geomed``: geometric median by Weiszfeld iterations started at the mean (``ra_GM``, tRFA). The official
  ``ra_GM`` divides the previous iteration's weights (they compound and overflow after a few dozen
  iterations); we use tRFA's fixed unit weights over the distance, identical at the default 1 iteration.
* ``krum`` / ``multikrum``: Blanchard et al. 2017; score = sum of squared distances to the n - f - 2
  nearest others (at least 1 when f is a majority); Multi-Krum averages the m best-scored updates
  (scores computed once, as Flower's ``MultiKrum``). Not in the official code.
* ``normclip``: clip each update to norm tau, then mean (``ra_norm`` with the fixed bound).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check(updates: Tensor, batched: bool = True) -> None:
    nd = 3 if batched else 2
    if updates.ndim != nd or updates.shape[-2] < 1:
        shape = "(runs, n_clients, d)" if batched else "(n_clients, d)"
        raise ValueError(f"updates: expected shape {shape} with n_clients >= 1, given {tuple(updates.shape)}")


# -- fast, batched over runs ---------------------------------------------------------------------------


def fedavg(updates: Tensor) -> Tensor:
    _check(updates)
    return updates.mean(1)


def median(updates: Tensor) -> Tensor:
    _check(updates)
    n = updates.shape[1]
    s = updates.sort(dim=1).values
    return 0.5 * (s[:, (n - 1) // 2] + s[:, n // 2])


def trim_count(n: int, beta: float) -> int:
    """Values dropped per side by the trimmed mean."""
    if beta <= 0:
        return 0
    return min(math.ceil(n * beta - 1e-9), (n - 1) // 2)


def trimmed_mean(updates: Tensor, beta: float) -> Tensor:
    _check(updates)
    n = updates.shape[1]
    t = trim_count(n, beta)
    s = updates.sort(dim=1).values
    return s[:, t: n - t].mean(1)


def geomed(updates: Tensor, iters: int = 1, tol: float = 1e-6) -> Tensor:
    """Weiszfeld with per-run early stop when the objective changes by < tol * objective."""
    _check(updates)
    z = updates.mean(1)  # (R, d)
    w = torch.ones(updates.shape[:2], dtype=updates.dtype, device=updates.device)  # (R, n)
    obj = (torch.linalg.vector_norm(updates - z.unsqueeze(1), dim=-1) * w).sum(1)
    active = torch.ones(updates.shape[0], dtype=torch.bool, device=updates.device)
    for _ in range(iters):
        dist = torch.linalg.vector_norm(updates - z.unsqueeze(1), dim=-1).clamp_min(1e-5)  # (R, n)
        w_new = 1.0 / dist  # Weiszfeld (tRFA): the original unit weights over the distance
        z_new = (w_new.unsqueeze(-1) * updates).sum(1) / w_new.sum(1, keepdim=True)
        obj_new = (torch.linalg.vector_norm(updates - z_new.unsqueeze(1), dim=-1) * w_new).sum(1)
        z = torch.where(active.unsqueeze(-1), z_new, z)
        w = torch.where(active.unsqueeze(-1), w_new, w)
        done = (obj - obj_new).abs() < tol * obj_new
        obj = torch.where(active, obj_new, obj)
        active = active & ~done
        if not bool(active.any()):
            break
    return z


def krum_scores(updates: Tensor, f: int) -> Tensor:
    """(R, n, d) -> (R, n): sum of squared distances to the max(n - f - 2, 1) nearest other updates."""
    _check(updates)
    n = updates.shape[1]
    d2 = torch.cdist(updates, updates).pow(2)  # (R, n, n)
    d2 = d2 + torch.diag_embed(torch.full((n,), float("inf"), dtype=d2.dtype, device=d2.device))
    k = min(max(n - f - 2, 1), n - 1) if n > 1 else 0
    if k == 0:
        return torch.zeros(updates.shape[:2], dtype=updates.dtype, device=updates.device)
    return d2.topk(k, dim=-1, largest=False).values.sum(-1)


def krum(updates: Tensor, f: int) -> Tensor:
    idx = krum_scores(updates, f).argmin(1)  # (R,)
    return updates[torch.arange(updates.shape[0]), idx]


def multikrum(updates: Tensor, f: int, m: int | None = None) -> Tensor:
    n = updates.shape[1]
    m = n - f if m is None else m
    m = max(1, min(m, n))
    idx = krum_scores(updates, f).topk(m, dim=1, largest=False).indices  # (R, m)
    return torch.gather(updates, 1, idx.unsqueeze(-1).expand(-1, -1, updates.shape[-1])).mean(1)


def normclip(updates: Tensor, tau: float) -> Tensor:
    _check(updates)
    norms = torch.linalg.vector_norm(updates, dim=-1, keepdim=True)  # (R, n, 1)
    scale = torch.minimum(tau / norms.clamp_min(1e-12), torch.ones_like(norms))
    return (updates * scale).mean(1)


def aggregate(name: str, updates: Tensor, *, alpha: float, n_byzantine: int, trim_fraction: float | None = None,
              geomed_iters: int = 1, norm_bound: float = 0.215771, krum_f: int | None = None,
              multikrum_m: int | None = None) -> Tensor:
    """Dispatch by name; ``updates (R, n, d) -> (R, d)``."""
    f = n_byzantine if krum_f is None else krum_f
    if name == "fedavg":
        return fedavg(updates)
    if name == "median":
        return median(updates)
    if name == "trimmed_mean":
        return trimmed_mean(updates, alpha if trim_fraction is None else trim_fraction)
    if name == "geomed":
        return geomed(updates, geomed_iters)
    if name == "krum":
        return krum(updates, f)
    if name == "multikrum":
        return multikrum(updates, f, multikrum_m)
    if name == "normclip":
        return normclip(updates, norm_bound)
    raise ValueError(f"aggregator: expected one of fedavg, median, trimmed_mean, geomed, krum, multikrum, "
                     f"normclip, given {name!r}")


# -- references, one run, loops ------------------------------------------------------------------------


def fedavg_reference(points: Tensor) -> Tensor:
    _check(points, batched=False)
    return sum(points[i] for i in range(points.shape[0])) / points.shape[0]


def median_reference(points: Tensor) -> Tensor:
    _check(points, batched=False)
    out = torch.empty(points.shape[1], dtype=points.dtype)
    for j in range(points.shape[1]):
        vals = sorted(points[:, j].tolist())
        n = len(vals)
        out[j] = vals[n // 2] if n % 2 else 0.5 * (vals[n // 2 - 1] + vals[n // 2])
    return out


def trimmed_mean_reference(points: Tensor, beta: float) -> Tensor:
    _check(points, batched=False)
    n = points.shape[0]
    if beta == 0:
        return fedavg_reference(points)
    t = min(math.ceil(n * beta - 1e-9), (n - 1) // 2)
    out = torch.empty(points.shape[1], dtype=points.dtype)
    for j in range(points.shape[1]):  # coordinate-wise, like ra_CWTM
        vals = sorted(points[:, j].tolist())
        kept = vals[t: n - t]
        out[j] = sum(kept) / len(kept)
    return out


def geomed_reference(points: Tensor, iters: int = 1, tol: float = 1e-6) -> Tensor:
    _check(points, batched=False)
    pts = [points[i] for i in range(points.shape[0])]
    weights = [1.0] * len(pts)

    def objective(z: Tensor, ws: list[float]) -> float:
        return sum(w * float(torch.linalg.vector_norm(z - p)) for w, p in zip(ws, pts))

    z = sum(w * p for w, p in zip(weights, pts)) / sum(weights)
    obj = objective(z, weights)
    for _ in range(iters):
        prev = obj
        weights = [1.0 / max(1e-5, float(torch.linalg.vector_norm(z - p))) for p in pts]
        z = sum(w * p for w, p in zip(weights, pts)) / sum(weights)
        obj = objective(z, weights)
        if abs(prev - obj) < tol * obj:
            break
    return z


def krum_reference(points: Tensor, f: int, m: int = 1) -> Tensor:
    _check(points, batched=False)
    n = points.shape[0]
    k = min(max(n - f - 2, 1), n - 1)
    scores = []
    for i in range(n):
        d = sorted(float(torch.sum((points[i] - points[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(d[:k]))
    order = sorted(range(n), key=lambda i: (scores[i], i))[:m]
    return sum(points[i] for i in order) / len(order)


def normclip_reference(points: Tensor, tau: float) -> Tensor:
    _check(points, batched=False)
    clipped = []
    for i in range(points.shape[0]):
        nrm = float(torch.linalg.vector_norm(points[i]))
        clipped.append(points[i] * min(tau / max(nrm, 1e-12), 1.0))
    return sum(clipped) / len(clipped)
