"""Symmetry (isotropy) scores of an embedding space.

Yokoi et al. (NeurIPS 2024), Sec. 3.2, official ``src/calc_isotropy_score.py``: a space is symmetric when
its (p-weighted) mean is zero (1st moment) and its (p-weighted) covariance is isotropic (2nd moment):

* ``sym1 = 1 - ||E_p[w]|| / E_p[||w||]``                   (degree of centrality, in [0, 1])
* ``sym2 = H(lam / sum lam) / log d``                       (normalised spectral entropy, in [0, 1])

with ``lam`` the eigenvalues of the p-weighted covariance (the squared singular values of
``diag(sqrt p)(W - mu)``). Both are 1 for a perfectly symmetric space. The *Zipfian* scores use the
word-frequency prior p; the *uniform* ones use p = 1/V. Comparators: IsoScore (Rudman et al., ACL
Findings 2022) and the average cosine similarity (reported as ``1 - avg cos``, higher = more symmetric).
"""

from __future__ import annotations

import math

import torch

from zipf_whitening.functional import (
    Array,
    as_float64,
    check_moment_range,
    normalize_weights,
    weighted_moments,
)

__all__ = ["sym1", "sym2", "isoscore", "average_cosine", "symmetry_scores"]


def _weights(X: torch.Tensor, p: Array | None) -> torch.Tensor:
    V = X.shape[0]
    if p is None:
        return torch.full((V,), 1.0 / V, dtype=torch.float64, device=X.device)
    return normalize_weights(p, V).to(X.device)


def _check(X: Array) -> torch.Tensor:
    Xt = as_float64(X)
    if Xt.ndim != 2 or Xt.shape[0] < 2:
        raise ValueError(f"expected a 2-D matrix with at least 2 rows, got shape {tuple(Xt.shape)}")
    if not torch.isfinite(Xt).all():
        raise ValueError("X contains NaN or infinite values")
    return check_moment_range("X", Xt)


def sym1(X: Array, p: Array | None = None) -> float:
    """1st-moment symmetry ``1 - ||sum_i p_i x_i|| / sum_i p_i ||x_i||`` (``p=None``: uniform)."""
    Xt = _check(X)
    pt = _weights(Xt, p)
    denom = float(pt @ Xt.norm(dim=1))
    if denom == 0:
        raise ValueError("sym1 is undefined when every vector with positive weight is zero")
    return 1.0 - float((pt @ Xt).norm()) / denom


def _entropy_score(lam: torch.Tensor) -> float:
    lam = lam.clamp_min(0)
    d = lam.numel()
    if d < 2:
        raise ValueError(f"the 2nd-moment score needs at least 2 dimensions, got {d}")
    q = lam / lam.sum()
    q = q[q > 0]
    return float(-(q * q.log()).sum()) / math.log(d)


def sym2(X: Array, p: Array | None = None) -> float:
    """2nd-moment symmetry: entropy of the normalised weighted-covariance spectrum over ``log d``."""
    Xt = _check(X)
    _, C = weighted_moments(Xt, _weights(Xt, p))
    return _entropy_score(torch.linalg.eigvalsh(C))


def _isoscore_from_spectrum(s: torch.Tensor) -> float:
    s = s.clamp_min(0)
    d = s.numel()
    if float(s.norm()) == 0:
        raise ValueError("IsoScore is undefined for a space with zero variance")
    s_hat = math.sqrt(d) * s / s.norm()
    delta = float((s_hat - 1).norm()) / math.sqrt(2 * (d - math.sqrt(d)))
    phi = (d - delta**2 * (d - math.sqrt(d))) ** 2 / d**2
    return (d * phi - 1) / (d - 1)


def isoscore(X: Array, p: Array | None = None) -> float:
    """IsoScore (Rudman et al. 2022, Alg. 1): how uniformly the principal axes share the variance.

    Steps: PCA-reorient; variance vector ``s`` (the covariance eigenvalues); ``s^ = sqrt(d) s/||s||``;
    defect ``delta = ||s^ - 1|| / sqrt(2(d - sqrt d))``; ``phi = (d - delta^2 (d - sqrt d))^2 / d^2``;
    ``IsoScore = (d phi - 1)/(d - 1)``. 1 = isotropic, 0 = a single direction. ``p`` gives a weighted
    variant (the original is uniform).
    """
    Xt = _check(X)
    _, C = weighted_moments(Xt, _weights(Xt, p))
    return _isoscore_from_spectrum(torch.linalg.eigvalsh(C))


def average_cosine(X: Array, p: Array | None = None) -> float:
    """Average cosine similarity between vectors, exactly and in O(V d).

    Uniform (``p=None``): the mean over the V(V-1) ordered pairs of distinct rows,
    ``(||sum_i u_i||^2 - V) / (V(V - 1))`` with unit vectors ``u_i``. Weighted: ``E_{w, w' ~ p}[cos(w, w')]``
    for two independent draws, ``||sum_i p_i u_i||^2``. Zero rows are rejected.
    """
    Xt = _check(X)
    norms = Xt.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError(f"average_cosine: {int((norms == 0).sum())} zero vector(s) have no direction")
    U = Xt / norms
    if p is None:
        V = U.shape[0]
        return float((U.sum(0).square().sum() - V) / (V * (V - 1)))
    return float((_weights(Xt, p) @ U).square().sum())


def symmetry_scores(X: Array, p: Array | None = None) -> dict[str, float]:
    """All scores at once: Zipfian (needs ``p``) and uniform sym1/sym2, IsoScore and ``1 - avg cos``.

    Shares one pass over X per prior (the uniform spectrum serves sym2_uniform and IsoScore).
    """
    Xt = _check(X)
    norms = Xt.norm(dim=1)
    out = {}
    priors = ([("zipf", _weights(Xt, p))] if p is not None else []) + [("uniform", _weights(Xt, None))]
    for name, w in priors:
        mu, C = weighted_moments(Xt, w)
        lam = torch.linalg.eigvalsh(C)
        out[f"sym1_{name}"] = 1.0 - float(mu.norm()) / float(w @ norms)
        out[f"sym2_{name}"] = _entropy_score(lam)
        if name == "uniform":
            out["isoscore"] = _isoscore_from_spectrum(lam)
    out["one_minus_avg_cos"] = 1.0 - average_cosine(Xt)
    return out
