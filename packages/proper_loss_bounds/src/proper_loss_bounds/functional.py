"""Pure math shared by the loss zoo and the bound computations.

Conventions (used throughout the package):

* ``K``: number of classes; a probability vector lives on the last axis, shape ``(..., K)``.
* ``p``: the true class-probability vector, ``q``: the prediction (both in the simplex ``Δ_K``).
* ``Φ = -H``: the negative Bayes risk (a convex function); the surrogate regret is the Bregman
  divergence ``D_Φ(p, q) = Φ(p) - Φ(q) - <∇Φ(q), p - q>`` (Bao & Takatsu, Sec. 2).
* ``‖·‖_s``: the ``s``-norm, ``s ∈ [1, ∞]`` (the paper's ``p``-norm; we write ``s`` in code to keep
  ``p`` for probabilities).

Everything here takes and returns torch tensors; :mod:`proper_loss_bounds.losses` wraps numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "simplex_tolerance",
    "check_simplex",
    "check_labels",
    "check_norm",
    "lp_norm",
    "tangent_basis",
    "bregman_divergence",
    "softmax_vjp",
    "min_quadratic_ratio",
    "kappa",
    "simplex_exit_time",
]


def simplex_tolerance(dtype: torch.dtype) -> float:
    """Absolute tolerance on ``sum(q) = 1`` and ``q >= 0``: ``sqrt(machine eps)`` of ``dtype``."""
    return math.sqrt(torch.finfo(dtype).eps)


def check_simplex(x: Tensor, name: str = "q", num_classes: int | None = None) -> Tensor:
    """Validate that the last axis of ``x`` is a probability vector and return it.

    Entries in ``[-tol, 0)`` (rounding) are set to 0; anything further off raises.

    Args:
        x: tensor ``(..., K)``.
        name: argument name for error messages.
        num_classes: the ``K`` a loss expects, if it fixes one.

    Raises:
        ValueError: with the expected and the given values.
    """
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must hold floating-point probabilities, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name} must have a class axis (shape (..., K)), got a scalar")
    k = x.shape[-1]
    if k < 2:
        raise ValueError(f"{name} needs at least K=2 classes on its last axis, got shape {tuple(x.shape)}")
    if num_classes is not None and k != num_classes:
        raise ValueError(f"{name} has K={k} classes on its last axis, but this loss is defined for "
                         f"K={num_classes} (shape {tuple(x.shape)})")
    if x.numel() == 0:
        return x
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got {int((~torch.isfinite(x)).sum())} non-finite entries")
    tol = simplex_tolerance(x.dtype)
    if x.dtype == torch.float64 and torch.equal(x, x.float().double()):
        # the values carry float32 precision (e.g. float32 Dirichlet samples cast to float64): their rows
        # can only sum to 1 up to float32 rounding, so the tolerance follows that precision
        tol = simplex_tolerance(torch.float32)
    lo = float(x.min())
    if lo < -tol:
        raise ValueError(f"{name} must be in the probability simplex: expected entries >= 0, got min {lo:.3g}")
    err = float((x.sum(-1) - 1).abs().max())
    if err > tol * max(1.0, k / 10):
        raise ValueError(f"{name} must be in the probability simplex: expected each row to sum to 1 "
                         f"(tolerance {tol:.1e}), got a row off by {err:.3g}")
    return x.clamp_min(0) if lo < 0 else x


def check_labels(y: Tensor, batch_shape: torch.Size, num_classes: int) -> Tensor:
    """Validate integer labels ``y`` of shape ``batch_shape`` with values in ``[0, K)``."""
    if torch.is_floating_point(y) or y.dtype == torch.bool or torch.is_complex(y):
        raise ValueError(f"labels y must be integer class indices, got dtype {y.dtype}")
    if y.shape != batch_shape:
        try:
            y = y.expand(batch_shape)
        except RuntimeError:
            raise ValueError(f"labels y must have the batch shape of q, expected {tuple(batch_shape)}, "
                             f"got {tuple(y.shape)}") from None
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels y must be in [0, {num_classes - 1}] for K={num_classes} classes, "
                         f"got values in [{int(y.min())}, {int(y.max())}]")
    return y.long()


def check_norm(s: float) -> float:
    """Validate the exponent of an ``s``-norm (``1 <= s <= inf``)."""
    try:
        s = float(s)
    except (TypeError, ValueError):
        raise ValueError(f"norm exponent must be a number in [1, inf], got {s!r}") from None
    if not (s >= 1):
        raise ValueError(f"norm exponent must be in [1, inf], got {s}")
    return s


def lp_norm(v: Tensor, s: float, dim: int = -1) -> Tensor:
    """``‖v‖_s`` along ``dim`` for ``s ∈ [1, ∞]``."""
    s = check_norm(s)
    if math.isinf(s):
        return v.abs().amax(dim)
    if s == 1:
        return v.abs().sum(dim)
    if s == 2:
        return torch.linalg.vector_norm(v, dim=dim)
    return (v.abs() ** s).sum(dim) ** (1 / s)


def tangent_basis(k: int, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """An orthonormal basis ``B`` (``K x (K-1)``) of the tangent space ``{v: sum(v) = 0}`` of ``Δ_K``."""
    ones = torch.ones(k, 1, dtype=dtype, device=device) / math.sqrt(k)
    # Householder-free: QR of [1, I] gives 1/sqrt(K) first, then an orthonormal complement
    q, _ = torch.linalg.qr(torch.cat([ones, torch.eye(k, dtype=dtype, device=device)], dim=1))
    return q[:, 1:k]


def bregman_divergence(phi: Callable[[Tensor], Tensor], grad_phi: Callable[[Tensor], Tensor],
                       p: Tensor, q: Tensor) -> Tensor:
    """``D_Φ(p, q) = Φ(p) - Φ(q) - <∇Φ(q), p - q>`` (Sec. 2: the surrogate regret of a proper loss)."""
    return phi(p) - phi(q) - (grad_phi(q) * (p - q)).sum(-1)


def softmax_vjp(q: Tensor, g: Tensor) -> Tensor:
    """``J_softmax(z)ᵀ g = q ⊙ g - q <q, g>`` where ``q = softmax(z)`` (``J`` is symmetric)."""
    return q * (g - (q * g).sum(-1, keepdim=True))


def simplex_exit_time(p: Tensor, u: Tensor) -> Tensor:
    """Largest ``t >= 0`` with ``p + t u`` in the simplex (``u`` a tangent direction): ``min_{u_i<0} p_i/(-u_i)``."""
    neg = u < 0
    ratio = torch.where(neg, p / torch.where(neg, -u, torch.ones_like(u)), torch.full_like(u, math.inf))
    return ratio.amin(-1)


def sphere_adam(f: Callable[[Tensor], Tensor], z: Tensor, *, steps: int, lr: float,
                normalize: bool = True) -> Tensor:
    """Minimise ``f(z).sum()`` (independent rows) by Adam with a cosine step size, optionally on the sphere.

    A few lines instead of ``torch.optim`` keep this module light (importing ``torch.optim`` pulls in
    ``torch._dynamo``, which takes tens of seconds on a busy CPU).
    """
    z = z.detach().clone()
    m = torch.zeros_like(z)
    v = torch.zeros_like(z)
    b1, b2 = 0.9, 0.999
    for it in range(1, steps + 1):
        zr = z.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(f(zr).sum(), zr)
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        z = zr.detach()
        m.mul_(b1).add_(grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        step = lr * (1e-3 + 0.5 * (1 - 1e-3) * (1 + math.cos(math.pi * it / steps)))
        z = z - step * (m / (1 - b1**it)) / ((v / (1 - b2**it)).sqrt() + 1e-12)
        if normalize:
            z = z / z.norm(dim=-1, keepdim=True)
    return z


def min_quadratic_ratio(m: Tensor, s: float, *, starts: int = 64, steps: int = 300,
                        generator: torch.Generator | None = None) -> Tensor:
    """``min_{v ∈ T, v ≠ 0} vᵀ M v / ‖v‖_s²`` over the tangent space ``T`` of the simplex, batched.

    This is the curvature of ``Φ`` at a point in its flattest direction measured in the ``s``-norm;
    its infimum over the simplex is the strong-properness constant (Sec. 2, Agarwal 2014).

    * ``s = 2``: the smallest eigenvalue of ``Bᵀ M B`` (exact).
    * ``s = 1`` and ``s = ∞``: exact by duality, ``max_{vᵀMv <= 1} ‖v‖_s = max_{w ∈ ext(B_{s*})}
      sqrt(wᵀ B (BᵀMB)⁻¹ Bᵀ w)`` over the extreme points of the dual ball (sign vectors for ``s = 1``,
      ``K <= 16``; ``±e_i`` for ``s = ∞``).
    * other ``s``: multi-start projected gradient descent on the sphere (an upper bound on the true
      minimum that is tight in practice for small ``K``; the extreme-point candidates are included).

    Args:
        m: symmetric matrices ``(..., K, K)`` (positive semidefinite on ``T``).
        s: norm exponent in ``[1, ∞]``.

    Returns:
        ``(...)`` the minima (``0`` where ``M`` is singular on ``T``).
    """
    s = check_norm(s)
    k = m.shape[-1]
    b = tangent_basis(k, m.dtype, m.device)  # (K, K-1)
    mt = b.T @ m @ b  # (..., K-1, K-1)
    mt = 0.5 * (mt + mt.transpose(-1, -2))
    if s == 2:
        return torch.linalg.eigvalsh(mt)[..., 0].clamp_min(0)
    if s == 1 and k <= 16 or math.isinf(s):
        if math.isinf(s):
            w = torch.cat([torch.eye(k, dtype=m.dtype, device=m.device)])  # ±e_i give the same value
        else:
            signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=k - 1)), dtype=m.dtype,
                                 device=m.device)
            w = torch.cat([torch.ones(len(signs), 1, dtype=m.dtype, device=m.device), signs], dim=1)
        wt = w @ b  # (n, K-1)
        # max_w wᵀB M_T⁻¹ Bᵀw; a singular M_T means an unbounded ratio: minimum 0
        evals, evecs = torch.linalg.eigh(mt)
        evals = evals.clamp_min(1e-300)
        proj = wt @ evecs  # (..., n, K-1)
        val = (proj**2 / evals.unsqueeze(-2)).sum(-1).amax(-1)
        return 1.0 / val
    return _min_quadratic_ratio_pgd(mt, b, s, starts=starts, steps=steps, generator=generator)


def _min_quadratic_ratio_pgd(mt: Tensor, b: Tensor, s: float, *, starts: int, steps: int,
                             generator: torch.Generator | None) -> Tensor:
    batch = mt.shape[:-2]
    d = mt.shape[-1]
    k = b.shape[0]
    mt_f = mt.reshape(-1, d, d)  # (N, d, d)
    n = mt_f.shape[0]
    # starts: e_i - e_j, balanced sign vectors, random Gaussians; all mapped into tangent coordinates
    cand = []
    for i in range(k):
        for j in range(i + 1, k):
            e = torch.zeros(k, dtype=mt.dtype, device=mt.device)
            e[i], e[j] = 1.0, -1.0
            cand.append(e)
    for m_pos in range(1, k):
        e = torch.full((k,), -m_pos / (k - m_pos), dtype=mt.dtype, device=mt.device)
        e[:m_pos] = 1.0
        cand.append(e)
    z0 = torch.stack(cand) @ b  # (c, d)
    zr = torch.randn(starts, d, dtype=mt.dtype, device=mt.device, generator=generator)
    z = torch.cat([z0, zr]).unsqueeze(0).expand(n, -1, -1).clone()  # (N, S, d)
    z = z / z.norm(dim=-1, keepdim=True)

    def ratio(z: Tensor) -> Tensor:
        quad = torch.einsum("nsd,nde,nse->ns", z, mt_f, z)  # (N, S)
        return quad / lp_norm(z @ b.T, s) ** 2

    z = sphere_adam(ratio, z, steps=steps, lr=0.05)
    with torch.no_grad():
        best = ratio(z).amin(-1).clamp_min(0)
    return best.reshape(batch)


def kappa(r: float, s: float, k: int, **kw) -> float:
    """``κ(r, s, K) = inf_{v ∈ T} ‖v‖_r² / ‖v‖_s²`` (``r > 0``), computed numerically.

    It appears in the closed form of the Tsallis family: ``inf_{q ∈ Δ} Σ_i q_i^{α-2} v_i² = ‖v‖_r²``
    with ``r = 2/(3-α)`` (Lagrange), so the Tsallis-α loss (``0 < α < 2``) is ``α κ(r, s, K)``-strongly
    proper in the ``s``-norm. Computed by multi-start gradient descent over the tangent sphere.
    """
    s = check_norm(s)
    if r <= 0:
        raise ValueError(f"kappa needs r > 0, got {r}")
    b = tangent_basis(k)
    g = torch.Generator().manual_seed(kw.pop("seed", 0))
    cand = []
    for i in range(k):
        for j in range(i + 1, k):
            e = torch.zeros(k, dtype=torch.float64)
            e[i], e[j] = 1.0, -1.0
            cand.append(e)
    for m_pos in range(1, k):
        e = torch.full((k,), -m_pos / (k - m_pos), dtype=torch.float64)
        e[:m_pos] = 1.0
        cand.append(e)
    z = torch.cat([torch.stack(cand) @ b, torch.randn(kw.get("starts", 128), k - 1, dtype=torch.float64,
                                                        generator=g)])
    z = z / z.norm(dim=-1, keepdim=True)

    def f(z: Tensor) -> Tensor:
        v = z @ b.T
        num = (v.abs().clamp_min(1e-30) ** r).sum(-1) ** (2 / r)
        return num / lp_norm(v, s) ** 2

    z = sphere_adam(f, z, steps=kw.get("steps", 400), lr=0.02)
    with torch.no_grad():
        return float(f(z).min())
