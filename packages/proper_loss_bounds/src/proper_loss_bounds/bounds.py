"""Checks and bounds: (strict) properness, strong-properness constants, the best regret bound ψ(r).

* :func:`check_properness` minimises ``L(·; p)`` over the simplex numerically (from the loss itself,
  not from ``H``), for properness and strict properness.
* :func:`strong_properness_constant` ``λ_s = inf_{q, v ∈ T} vᵀ∇²Φ(q)v / ‖v‖_s²``: the largest ``λ`` with
  ``R(q; p) >= (λ/2) ‖p - q‖_s²`` (Agarwal 2014; Sec. 2 of the paper). Closed forms where they exist.
* :func:`regret_bound` ``ψ(r) = sup{‖p - q‖_s : R(q; p) <= r}``: the best (smallest) function with
  ``‖p - q‖_s <= ψ(R(q; p))`` for all ``p, q`` (the paper's surrogate regret bound, Sec. 3).
* :func:`check_nonvacuous_iff_strict` and :func:`check_half_order` make the paper's two theorems
  checkable on a given loss: strictly proper ⇔ ``ψ(r) → 0``; and ``ψ(r) >= c sqrt(r)`` near 0 (no
  bound of order faster than 1/2), with ``c`` certified at an interior point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from papercommon.checks import check_int, check_positive
from torch import Tensor

from proper_loss_bounds.functional import (
    check_norm,
    check_simplex,
    kappa,
    lp_norm,
    min_quadratic_ratio,
    simplex_exit_time,
    sphere_adam,
    tangent_basis,
)
from proper_loss_bounds.losses import ProperLoss, TsallisLoss, get_loss

__all__ = [
    "ProperCheck",
    "check_properness",
    "strong_properness_constant",
    "RegretBound",
    "regret_bound",
    "loglog_slope",
    "TheoremCheck",
    "check_nonvacuous_iff_strict",
    "check_half_order",
]

_DT = torch.float64


def _resolve_k(loss: ProperLoss, k: int | None, default: int = 3) -> int:
    if loss.num_classes is not None:
        if k is not None and k != loss.num_classes:
            raise ValueError(f"{loss.name} loss is defined for K={loss.num_classes}, got num_classes={k}")
        return loss.num_classes
    k = default if k is None else k
    if int(k) != k or k < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {k}")
    return int(k)


def _dirichlet(m: int, k: int, concentration: int, g: torch.Generator) -> Tensor:
    """``m`` draws of a symmetric Dirichlet with integer concentration (sums of exponentials)."""
    x = torch.empty(m, k, concentration, dtype=_DT).exponential_(generator=g).sum(-1)
    return x / x.sum(-1, keepdim=True)


def _simplex_points(k: int, n: int, g: torch.Generator, *, eps: float = 0.0) -> Tensor:
    """A mixed cloud of points of Δ_K: interior, sparse, faces, near vertices, two-point edges, vertices."""
    parts = []
    m = max(n // 6, 1)
    parts.append(_dirichlet(m, k, 1, g))
    gam = torch.empty(m, k, dtype=_DT).exponential_(generator=g) ** 4  # Dirichlet(~0.25)-like, sparse
    parts.append(gam / gam.sum(-1, keepdim=True))
    # faces: zero out a random subset (keep >= 1)
    x = torch.rand(m, k, dtype=_DT, generator=g)
    keep = torch.rand(m, k, generator=g) < 0.5
    keep[torch.arange(m), torch.randint(0, k, (m,), generator=g)] = True
    x = torch.where(keep, x, torch.zeros_like(x))
    parts.append(x / x.sum(-1, keepdim=True))
    # near vertices: log-uniform small coordinates
    small = 10 ** (-8 * torch.rand(m, k, dtype=_DT, generator=g))
    small[torch.arange(m), torch.randint(0, k, (m,), generator=g)] = 1.0
    parts.append(small / small.sum(-1, keepdim=True))
    # edges (a, 1-a, 0, ...) with a uniform or log-uniform
    a = torch.where(torch.rand(m, generator=g) < 0.5, torch.rand(m, dtype=_DT, generator=g),
                    10 ** (-8 * torch.rand(m, dtype=_DT, generator=g)))
    e = torch.zeros(m, k, dtype=_DT)
    i = torch.randint(0, k, (m,), generator=g)
    j = (i + torch.randint(1, k, (m,), generator=g)) % k
    e[torch.arange(m), i] = a
    e[torch.arange(m), j] = 1 - a
    parts.append(e)
    parts.append(torch.eye(k, dtype=_DT))
    parts.append(torch.full((1, k), 1.0 / k, dtype=_DT))
    pts = torch.cat(parts)
    if eps > 0:
        pts = pts.clamp_min(eps)
        pts = pts / pts.sum(-1, keepdim=True)
    return pts


# ====================================================================== properness
@dataclass
class ProperCheck:
    """Outcome of :func:`check_properness`.

    Attributes:
        proper: no ``q`` found with ``L(q; p) < L(p; p) - tol``.
        strictly_proper: proper, and no ``q`` with ``‖q - p‖_1 >= delta`` found within ``tol`` of ``L(p; p)``.
        max_violation: ``max_p [L(p; p) - min_q L(q; p)]`` (``<= 0`` up to rounding for a proper loss).
        min_far_gap: ``min_{p, ‖q-p‖_1 >= delta} L(q; p) - L(p; p)`` (``> 0`` for a strictly proper loss).
    """

    proper: bool
    strictly_proper: bool
    max_violation: float
    min_far_gap: float
    witness_p: list = field(default_factory=list)
    witness_q: list = field(default_factory=list)


def check_properness(loss: ProperLoss | str, num_classes: int | None = None, *, num_p: int = 128,
                     num_q: int = 512, delta: float = 0.05, tol: float = 1e-10, steps: int = 200,
                     seed: int = 0) -> ProperCheck:
    """Numerically check (strict) properness: minimise ``L(·; p) = Σ_y p_y ℓ(·, y)`` over ``Δ_K``.

    For each of ``num_p`` points ``p`` (interior, faces, near vertices) the risk is evaluated on
    ``num_q`` candidates (random, vertices, perturbations of ``p``), then refined by gradient descent
    on softmax parameters when the loss is differentiable. The risk comes from the loss values,
    never from ``H``, so a non-concave "Bayes risk" given to :class:`SavageLoss` is caught.

    Args:
        loss: the loss (or a name).
        num_classes: ``K`` (default 3, or the loss's fixed ``K``).
        delta: ``ℓ₁`` radius outside which a near-minimiser contradicts strict properness.
        tol: risk tolerance.

    Returns:
        :class:`ProperCheck`.
    """
    check_int("num_p", num_p)
    check_int("num_q", num_q, min_value=2)
    check_positive("delta", delta)
    check_positive("tol", tol, allow_zero=True)
    check_int("steps", steps, min_value=0)
    loss = get_loss(loss)
    k = _resolve_k(loss, num_classes)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    p = _simplex_points(k, num_p, g, eps=1e-6)  # (P, K); keep off 0 so log-type risks stay finite
    npts = p.shape[0]
    qs = [_simplex_points(k, num_q // 2, g, eps=1e-9).unsqueeze(0).expand(npts, -1, -1)]
    noise = torch.randn(npts, num_q // 2, k, dtype=_DT, generator=g) * (10 ** (-4 * torch.rand(
        npts, num_q // 2, 1, dtype=_DT, generator=g)))
    qp = (p.unsqueeze(1) * torch.exp(noise)).clamp_min(1e-12)
    qs.append(qp / qp.sum(-1, keepdim=True))
    q = torch.cat(qs, 1)  # (P, Q, K)

    def risk(qq: Tensor) -> Tensor:
        lq = loss._losses(qq)
        return (p.unsqueeze(1) * lq).sum(-1)

    with torch.no_grad():
        h = (p * loss._losses(p)).sum(-1)  # L(p; p)
        rq = risk(q)
    if loss.differentiable and steps > 0:
        sel = rq.topk(min(16, rq.shape[1]), dim=1, largest=False).indices
        far = ((q - p.unsqueeze(1)).abs().sum(-1) >= delta)
        # also refine the best candidates that are far from p (strictness witnesses)
        rq_far = torch.where(far, rq, torch.full_like(rq, math.inf))
        sel = torch.cat([sel, rq_far.topk(min(16, rq.shape[1]), dim=1, largest=False).indices], 1)
        theta = torch.log(torch.gather(q, 1, sel.unsqueeze(-1).expand(-1, -1, k)).clamp_min(1e-12))

        def obj(th: Tensor) -> Tensor:
            val = risk(torch.softmax(th, -1))
            return torch.where(torch.isfinite(val), val, torch.zeros_like(val))

        theta = sphere_adam(obj, theta, steps=steps, lr=0.05, normalize=False)
        with torch.no_grad():
            qr = torch.softmax(theta, -1)
            q = torch.cat([q, qr], 1)
            rq = torch.cat([rq, risk(qr)], 1)
    gap = rq - h.unsqueeze(1)  # (P, Q)
    gap = torch.where(torch.isnan(gap), torch.full_like(gap, math.inf), gap)
    max_violation = float((-gap).amax())
    dist = (q - p.unsqueeze(1)).abs().sum(-1)
    far_gap = torch.where(dist >= delta, gap, torch.full_like(gap, math.inf))
    min_far = float(far_gap.amin())
    proper = max_violation <= tol + 1e-9 * float(h.abs().max())
    strict = proper and min_far > tol
    flat = int(torch.argmin(far_gap.reshape(-1))) if not strict else int(torch.argmax((-gap).reshape(-1)))
    pi, qi = divmod(flat, gap.shape[1])
    return ProperCheck(proper=proper, strictly_proper=strict, max_violation=max_violation, min_far_gap=min_far,
                       witness_p=p[pi].tolist(), witness_q=q[pi, qi].tolist())


# ====================================================================== strong properness
def strong_properness_constant(loss: ProperLoss | str, s: float = 2.0, num_classes: int | None = None, *,
                               method: str = "auto", num_points: int = 1024, refine_rounds: int = 6,
                               seed: int = 0) -> float:
    """The strong-properness constant ``λ_s`` of a loss in the ``s``-norm.

    ``λ_s = inf_{q ∈ Δ_K} inf_{v ∈ T} vᵀ ∇²Φ(q) v / ‖v‖_s²`` (``T = {Σ v = 0}``), the largest ``λ``
    with ``R(q; p) >= (λ/2) ‖p - q‖_s²`` for all ``p, q`` (``λ``-strong convexity of ``Φ = -H`` on the
    simplex; Agarwal 2014, Sec. 2 of the paper). Then ``‖p - q‖_s <= sqrt(2 R / λ_s)``.

    Args:
        loss: the loss or a name.
        s: norm exponent in ``[1, ∞]``.
        num_classes: ``K`` (default 3, or the loss's fixed ``K``).
        method: ``"auto"`` (closed form if known, else the Tsallis semi-closed form, else numeric),
            ``"closed"`` (raise if none), ``"numeric"`` (always search).
        num_points, refine_rounds, seed: numeric search size.

    Returns:
        ``λ_s`` (``0.0``: not strongly proper). Numeric values are upper bounds found by search
        (tight in practice for small ``K``; the tests compare them with the closed forms).

    Example:
        >>> from proper_loss_bounds import LogLoss
        >>> strong_properness_constant(LogLoss(), s=1)  # Pinsker
        1.0
    """
    check_int("num_points", num_points)
    check_int("refine_rounds", refine_rounds, min_value=0)
    loss = get_loss(loss)
    s = check_norm(s)
    k = _resolve_k(loss, num_classes)
    if method not in ("auto", "closed", "numeric"):
        raise ValueError(f"method must be 'auto', 'closed' or 'numeric', got {method!r}")
    if method != "numeric":
        c = loss._closed_form_constant(s, k)
        if c is not None:
            return float(c)
        if isinstance(loss, TsallisLoss) and loss.alpha < 2 and method == "auto":
            # inf_q Σ q^{α-2} v² = ‖v‖_r² with r = 2/(3-α)  (Lagrange), so λ = α κ(r, s, K)
            return loss.alpha * kappa(2 / (3 - loss.alpha), s, k, seed=seed)
        if method == "closed":
            raise ValueError(f"no closed form known for the {loss!r} constant in the s={s} norm with K={k}; "
                             "use method='numeric'")
    return _numeric_constant(loss, s, k, num_points=num_points, refine_rounds=refine_rounds, seed=seed)


def _curvature(loss: ProperLoss, q: Tensor, s: float, g: torch.Generator) -> Tensor:
    k = q.shape[-1]
    eye = torch.eye(k, dtype=_DT)
    qe = q.unsqueeze(-2).expand(*q.shape[:-1], k, k)
    hess = loss._hvp(qe, eye.expand_as(qe))
    hess = 0.5 * (hess + hess.transpose(-1, -2))
    hess = torch.nan_to_num(hess, nan=0.0, posinf=1e300, neginf=-1e300)
    return min_quadratic_ratio(hess, s, starts=16, steps=150, generator=g)


def _numeric_constant(loss: ProperLoss, s: float, k: int, *, num_points: int, refine_rounds: int,
                      seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    eps = 1e-9
    q = _simplex_points(k, num_points, g, eps=eps)
    with torch.no_grad():
        mu = _curvature(loss, q, s, g)
        for rnd in range(refine_rounds):
            top = mu.topk(min(16, len(mu)), largest=False).indices
            scale = 0.5 * 0.5**rnd
            base = q[top].repeat(8, 1)
            cand = base * torch.exp(scale * torch.randn(base.shape, dtype=_DT, generator=g))
            cand = cand.clamp_min(eps)
            cand = cand / cand.sum(-1, keepdim=True)
            mu_c = _curvature(loss, cand, s, g)
            q, mu = torch.cat([q, cand]), torch.cat([mu, mu_c])
    return float(mu.min().clamp_min(0))


# ====================================================================== best regret bound ψ
@dataclass
class RegretBound:
    """The best regret bound ``ψ(r) = sup{‖p - q‖_s : R(q; p) <= r}`` on a grid of ``r``.

    Attributes:
        r: ``(R,)`` regret levels.
        psi: ``(R,)`` the sup found (a certified lower estimate: each value is attained by a pair).
        p, q: ``(R, K)`` the maximising pairs.
        s: the norm exponent.
    """

    r: np.ndarray
    psi: np.ndarray
    p: np.ndarray
    q: np.ndarray
    s: float
    loss: str = ""

    def slope(self, r_min: float | None = None, r_max: float | None = None) -> float:
        """Least-squares slope of ``log ψ`` against ``log r`` on ``[r_min, r_max]``."""
        return loglog_slope(self.r, self.psi, r_min=r_min, r_max=r_max)

    def to_dict(self) -> dict:
        return {"loss": self.loss, "s": self.s, "r": self.r.tolist(), "psi": self.psi.tolist()}


def loglog_slope(x, y, *, r_min: float | None = None, r_max: float | None = None) -> float:
    """Least-squares slope of ``log y`` on ``log x`` over ``x ∈ [r_min, r_max]`` (positive ``y`` only)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m = (x > 0) & (y > 0) & np.isfinite(y)
    if r_min is not None:
        m &= x >= r_min
    if r_max is not None:
        m &= x <= r_max
    if m.sum() < 2:
        raise ValueError(f"need at least 2 points with positive values to fit a slope, got {int(m.sum())}")
    return float(np.polyfit(np.log(x[m]), np.log(y[m]), 1)[0])


def _directions(k: int, n: int, s: float, g: torch.Generator) -> Tensor:
    """Tangent directions with ``‖u‖_s = 1``: random, ``e_i - e_j``, balanced and spread sign patterns."""
    b = tangent_basis(k)
    parts = [torch.randn(n, k - 1, dtype=_DT, generator=g) @ b.T]
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    e = torch.zeros(len(pairs), k, dtype=_DT)
    for r, (i, j) in enumerate(pairs):
        e[r, i], e[r, j] = 1.0, -1.0
    parts.append(e)
    spread = []
    for i in range(k):
        v = torch.full((k,), -1.0 / (k - 1), dtype=_DT)
        v[i] = 1.0
        spread += [v, -v]
    parts.append(torch.stack(spread))
    u = torch.cat(parts)
    return u / lp_norm(u, s).unsqueeze(-1)


def _max_step(loss: ProperLoss, p: Tensor, u: Tensor, r: Tensor, iters: int = 48) -> Tensor:
    """``sup{t in [0, t_max] : D_Φ(p, p + t u) <= r}`` by bisection (``D`` is nondecreasing in ``t``).

    ``p, u``: ``(N, K)``; ``r``: ``(R,)``. Returns ``(N, R)``.
    """
    tmax = simplex_exit_time(p, u)  # (N,)
    n, rr = p.shape[0], r.shape[0]
    lo = torch.zeros(n, rr, dtype=_DT)
    hi = tmax.unsqueeze(1).expand(n, rr).clone()
    pe, ue = p.unsqueeze(1), u.unsqueeze(1)

    def d(t: Tensor) -> Tensor:
        q = (pe + t.unsqueeze(-1) * ue).clamp_min(0)
        return loss._regret(q, pe.expand_as(q))

    with torch.no_grad():
        at_max = d(hi) <= r  # whole segment feasible
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            ok = d(mid) <= r  # NaN -> infeasible
            lo = torch.where(ok, mid, lo)
            hi = torch.where(ok, hi, mid)
        return torch.where(at_max, tmax.unsqueeze(1).expand(n, rr), lo)


def regret_bound(loss: ProperLoss | str, r, *, s: float = 2.0, num_classes: int | None = None,
                 num_candidates: int = 4096, refine_rounds: int = 8, seed: int = 0) -> RegretBound:
    """The best surrogate regret bound ``ψ(r) = sup{‖p - q‖_s : p, q ∈ Δ_K, R(q; p) <= r}``.

    Every pair lies on a ray ``q = p + t u`` from ``p`` and ``t ↦ D_Φ(p, p + t u)`` is nondecreasing,
    so for each candidate ``(p, u)`` (``‖u‖_s = 1``) the largest feasible ``t`` is found by bisection,
    vectorised over candidates and ``r``; then the best candidates of each ``r`` are perturbed and
    re-solved (``refine_rounds`` times). Candidates cover the interior, faces, near-vertex and
    two-point points (where strictly-but-not-strongly proper losses are flat).

    Args:
        loss: the loss or a name.
        r: regret level(s), positive.
        s: norm exponent of ``‖p - q‖_s``.
        num_classes: ``K`` (default 3, or the loss's fixed ``K``).
        num_candidates: number of ``(p, u)`` pairs in the initial search.
        refine_rounds: local refinement rounds.

    Returns:
        :class:`RegretBound` (``psi`` is attained by the returned pairs: a certified lower estimate of
        the sup, and an upper bound on how fast any valid bound can decay).

    Example:
        >>> from proper_loss_bounds import BrierLoss
        >>> b = regret_bound(BrierLoss(), [1e-4, 1e-2], num_candidates=256, refine_rounds=1)
        >>> [round(x, 4) for x in b.psi]  # regret = ‖p - q‖₂² exactly, so ψ(r) = sqrt(r)
        [0.01, 0.1]
    """
    check_int("num_candidates", num_candidates)
    check_int("refine_rounds", refine_rounds, min_value=0)
    loss = get_loss(loss)
    s = check_norm(s)
    k = _resolve_k(loss, num_classes)
    r_t = torch.as_tensor(np.atleast_1d(np.asarray(r, dtype=np.float64)), dtype=_DT)
    if r_t.ndim != 1 or not bool((r_t > 0).all()) or not bool(torch.isfinite(r_t).all()):
        raise ValueError(f"r must be positive finite regret level(s), got {np.asarray(r)}")
    g = torch.Generator().manual_seed(seed)
    p = _simplex_points(k, num_candidates, g)
    dirs = _directions(k, max(num_candidates // 8, 8), s, g)
    # pair every point with a few directions: the structured ones cycle, the random ones are drawn
    n = p.shape[0]
    reps = max(1, 2 * num_candidates // n)
    p = p.repeat(reps, 1)
    u = dirs[torch.randint(0, len(dirs), (p.shape[0],), generator=g)]
    t = _max_step(loss, p, u, r_t)  # (N, R)
    for rnd in range(refine_rounds):
        top = t.topk(min(16, t.shape[0]), dim=0).indices.reshape(-1).unique()  # best rows of every r
        scale = 0.3 * 0.5**rnd
        cp = p[top].repeat(4, 1)
        cu = u[top].repeat(4, 1)
        noise = torch.randn(cp.shape, dtype=_DT, generator=g)
        stay = (cp == 0) & (torch.rand(cp.shape, generator=g) < 0.8)  # mostly keep faces
        cp = torch.where(stay, cp, (cp + 1e-12) * torch.exp(scale * noise))
        cp = cp / cp.sum(-1, keepdim=True)
        cu = cu + scale * torch.randn(cu.shape, dtype=_DT, generator=g) * cu.abs().amax(-1, keepdim=True)
        cu = cu - cu.mean(-1, keepdim=True)
        cu = cu / lp_norm(cu, s).unsqueeze(-1)
        p, u = torch.cat([p, cp]), torch.cat([u, cu])
        t = torch.cat([t, _max_step(loss, cp, cu, r_t)])
    best_t, idx = t.max(0)
    best_p, best_u = p[idx], u[idx]  # (R, K)
    q = (best_p + best_t.unsqueeze(-1) * best_u).clamp_min(0)
    psi = lp_norm(q - best_p, s)
    return RegretBound(r=r_t.numpy(), psi=psi.numpy(), p=best_p.numpy(), q=q.numpy(), s=s, loss=repr(loss))


# ====================================================================== the paper's statements
@dataclass
class TheoremCheck:
    """A checkable form of one of the paper's statements on one loss."""

    statement: str
    holds: bool
    details: dict


def check_nonvacuous_iff_strict(loss: ProperLoss | str, num_classes: int | None = None, *, s: float = 2.0,
                                r_small: float = 1e-10, r_large: float = 1e-2, psi_tol: float = 0.02,
                                num_candidates: int = 2048, seed: int = 0) -> TheoremCheck:
    """Thm. (i): a non-vacuous bound (``ψ(r) → 0`` as ``r → 0``) exists iff the loss is strictly proper.

    Strict properness is decided by :func:`check_properness` (from the loss values); non-vacuity by
    ``ψ(r_small) <= psi_tol`` with ``ψ`` from :func:`regret_bound`. The statement holds on this loss
    when the two agree.
    """
    loss = get_loss(loss)
    k = _resolve_k(loss, num_classes)
    pc = check_properness(loss, k, seed=seed)
    b = regret_bound(loss, [r_small, r_large], s=s, num_classes=k, num_candidates=num_candidates, seed=seed)
    nonvacuous = bool(b.psi[0] <= psi_tol)
    return TheoremCheck(
        statement="strictly proper <=> non-vacuous regret bound",
        holds=pc.proper and (pc.strictly_proper == nonvacuous),
        details={"proper": pc.proper, "strictly_proper": pc.strictly_proper, "nonvacuous": nonvacuous,
                 "psi_small": float(b.psi[0]), "psi_large": float(b.psi[1]), "r_small": r_small,
                 "min_far_gap": pc.min_far_gap},
    )


def check_half_order(loss: ProperLoss | str, num_classes: int | None = None, *, s: float = 2.0,
                     r=None, point=None, num_candidates: int = 2048, seed: int = 0) -> TheoremCheck:
    """Thm. (ii): no bound decays faster than order 1/2, i.e. ``ψ(r) >= c sqrt(r)`` as ``r → 0``.

    Certificate: at an interior ``p`` (default: the centre) where ``Φ`` is twice differentiable, take
    the flattest unit direction ``u`` (``μ = uᵀ∇²Φ(p)u / ‖u‖_s²`` minimal); then ``ψ(r) >= t_u(r)`` with
    ``D_Φ(p, p + t_u u) = r`` exactly, and ``t_u(r)/sqrt(r) → sqrt(2/μ)``. The check confirms
    (a) ``min_r t_u(r)/sqrt(r) >= 0.9 sqrt(2/μ)`` on the grid, (b) the searched ``ψ`` is at least the
    certificate, and (c) the fitted log-log slope of ``ψ`` is at most ``1/2`` (+0.03).
    """
    loss = get_loss(loss)
    k = _resolve_k(loss, num_classes)
    s = check_norm(s)
    r = np.logspace(-8, -4, 9) if r is None else np.asarray(r, dtype=np.float64)
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(k, dtype=_DT)

    def hessian_at(x: Tensor) -> Tensor:
        h = loss._hvp(x.expand(k, k), eye)
        return 0.5 * (h + h.T)

    if point is None:
        # the centre, or (if Φ is flat there, e.g. the quartic) the first interior point where it is not
        pts = torch.cat([torch.full((1, k), 1.0 / k, dtype=_DT),
                         _dirichlet(16, k, 4, g)])
        p0 = pts[0]
        for x in pts:
            if float(min_quadratic_ratio(hessian_at(x), s, generator=g)) > 1e-12:
                p0 = x
                break
    else:
        p0 = check_simplex(torch.as_tensor(point, dtype=_DT), "point", k)
    hess = hessian_at(p0)
    mu = float(min_quadratic_ratio(hess, s, generator=g))
    dirs = _directions(k, 512, s, g)
    quad = torch.einsum("nk,kl,nl->n", dirs, hess, dirs)
    u = dirs[int(torch.argmin(quad))]
    mu_u = float(quad.min())
    r_t = torch.as_tensor(r, dtype=_DT)
    t_u = _max_step(loss, p0.unsqueeze(0), u.unsqueeze(0), r_t)[0].numpy()
    b = regret_bound(loss, r, s=s, num_classes=k, num_candidates=num_candidates, seed=seed)
    details = {"point": p0.tolist(), "mu": mu, "mu_direction": mu_u, "r": r.tolist(), "certificate": t_u.tolist(), "psi": b.psi.tolist()}
    if mu_u <= 0:
        # flat at this point: the bound is even slower there (order < 1/2); the certificate is t_u itself
        details["ratio_min"] = math.inf
        holds = bool(loglog_slope(r, b.psi) <= 0.5 + 0.03)
    else:
        c = math.sqrt(2 / mu_u)
        ratio = t_u / np.sqrt(r) / c
        details["c"] = c
        details["ratio_min"] = float(ratio.min())
        holds = bool(ratio.min() >= 0.9 and np.all(b.psi >= t_u * (1 - 1e-9)) and loglog_slope(r, b.psi) <= 0.53)
    details["slope"] = loglog_slope(r, b.psi)
    return TheoremCheck(statement="psi(r) >= c sqrt(r) as r -> 0 (no bound faster than order 1/2)",
                        holds=holds, details=details)
