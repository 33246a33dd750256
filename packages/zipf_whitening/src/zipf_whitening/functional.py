"""Pure math of Zipfian whitening: weighted moments, whitening matrices, SIF/uSIF weights.

Notation (Yokoi et al., NeurIPS 2024, Sec. 3): ``W`` is a (V, d) matrix of word vectors, ``p`` a
length-V probability vector (the unigram prior). Zipfian whitening is PCA whitening under the
*p-weighted* mean and covariance::

    mu = p^T W                                       # Eq. (1st moment), Alg. 1 line 1
    C  = sum_w p(w) (w - mu)(w - mu)^T = V diag(lam) V^T
    x~ = (x - mu) V diag(lam)^(-1/2)                  # Alg. 1 line 3

Two implementations live here and are tested against each other:

* :func:`whitening_reference` follows the official code line by line: the thin SVD of
  ``diag(sqrt(p)) (W - mu)`` (materialises a V x d weighted copy).
* :func:`weighted_moments` + :func:`whitening_from_moments` is the fast path: one chunked pass that
  accumulates ``mu`` and the d x d covariance in float64 (no V x d float64 copy), then ``eigh`` of a
  d x d matrix. On 400k x 50 GloVe this is a fraction of a second.

Everything accepts numpy arrays or torch tensors and computes in float64 (the official code's
float32 weighted mean over 227k rows drifts by 1e-2; see the package notes).
"""

from __future__ import annotations

import math

import numpy as np
import torch

Array = np.ndarray | torch.Tensor

#: Rows per chunk in the fast moment pass: bounds the float64 scratch to chunk x d.
CHUNK_ROWS = 16_384


def as_float64(x: Array, device: torch.device | str | None = None) -> torch.Tensor:
    """A float64 torch view/copy of ``x`` (numpy arrays are wrapped without a copy when possible)."""
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    return t.to(device=device if device is not None else t.device, dtype=torch.float64)


def normalize_weights(p: Array, n: int | None = None) -> torch.Tensor:
    """Validate non-negative finite weights and rescale them to sum to 1 (float64).

    Args:
        p: (V,) non-negative weights (counts or probabilities).
        n: expected length (the number of rows of the matching matrix), checked when given.

    Raises:
        ValueError: wrong shape or length, negative, non-finite or all-zero weights.
    """
    p = as_float64(p)
    if p.ndim != 1:
        raise ValueError(f"weights must be 1-D, expected shape ({n if n is not None else 'V'},), got {tuple(p.shape)}")
    if n is not None and p.shape[0] != n:
        raise ValueError(f"weights length must match the number of rows of X: expected {n}, got {p.shape[0]}")
    if not torch.isfinite(p).all():
        raise ValueError(f"weights must be finite, got {int((~torch.isfinite(p)).sum())} non-finite value(s)")
    if (p < 0).any():
        raise ValueError(f"weights must be non-negative, got minimum {float(p.min()):.4g}")
    total = p.sum()
    if total <= 0:
        raise ValueError("weights must not all be zero (expected a positive sum, got 0)")
    return p / total


def weighted_moments(X: Array, p: Array | None = None, *, chunk: int = CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and (population) covariance in float64, in chunks.

    Everything is float64 whatever the input dtype: only a chunk x d float64 copy exists at a time.
    (A float32 cross product was tried: on GloVe, whose Zipfian covariance has condition number
    ~1.7e3, it moved whitened values by 3e-3; float64 keeps them within 1e-5 of the official recipe.)

    Args:
        X: (V, d) vectors, any float dtype; numpy or torch (any device).
        p: (V,) weights summing to 1 (use :func:`normalize_weights`); ``None`` means uniform 1/V.
        chunk: rows per chunk (bounds the scratch memory to chunk x d).

    Returns:
        ``(mu (d,), C (d, d))`` with ``mu = sum_i p_i x_i`` and ``C = sum_i p_i (x_i - mu)(x_i - mu)^T``.
    """
    Xt = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.asarray(X))
    V, d = Xt.shape
    dev = Xt.device
    pt = torch.full((V,), 1.0 / V, dtype=torch.float64, device=dev) if p is None else as_float64(p, dev)
    mu = torch.zeros(d, dtype=torch.float64, device=dev)
    for s in range(0, V, chunk):  # pass 1: the mean, float64
        mu += pt[s:s + chunk] @ Xt[s:s + chunk].to(torch.float64)
    C = torch.zeros(d, d, dtype=torch.float64, device=dev)
    for s in range(0, V, chunk):  # pass 2: the centred second moment (two passes: no cancellation)
        xc = Xt[s:s + chunk].to(torch.float64) - mu  # (c, d)
        C += (xc * pt[s:s + chunk, None]).T @ xc
    return mu, (C + C.T) / 2


def _flip_signs(components: torch.Tensor) -> torch.Tensor:
    """Deterministic signs: the largest-|.| entry of each component (row) is positive (sklearn's svd_flip)."""
    idx = components.abs().argmax(dim=1)
    signs = torch.sign(components[torch.arange(components.shape[0], device=components.device), idx])
    signs[signs == 0] = 1
    return components * signs[:, None]


def whitening_from_moments(
    C: torch.Tensor, *, n_components: int | None = None, eps: float = 1e-10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigen-decompose a covariance into whitening factors.

    Args:
        C: (d, d) symmetric PSD covariance (float64).
        n_components: keep the top-k principal directions (``None``: all d).
        eps: relative rank tolerance for near-singular covariances: a direction whose variance is
            ``<= eps * lam_1`` is treated as null and gets scale 0 (Moore-Penrose whitening), so
            numerical noise in a (near-)singular covariance is never amplified. ``0`` keeps every
            direction with a strictly positive variance.

    Returns:
        ``(components (k, d), explained_variance (k,), scale (k,))``: rows of ``components`` are the
        principal directions (descending variance, deterministic signs), ``explained_variance`` the raw
        eigenvalues (clipped at 0), ``scale = 1/sqrt(lam)`` on kept directions and 0 on null ones.
    """
    lam, vecs = torch.linalg.eigh(C)  # ascending
    lam, vecs = lam.flip(0).clamp_min(0), vecs.flip(1)
    k = C.shape[0] if n_components is None else n_components
    components = _flip_signs(vecs[:, :k].T.contiguous())  # (k, d)
    lam = lam[:k]
    tol = eps * lam[0] if lam.numel() else 0.0
    keep = lam > tol
    scale = torch.where(keep, lam.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), torch.zeros_like(lam))
    return components, lam, scale


def whiten(X: Array, mu: torch.Tensor, components: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``(X - mu) @ components.T * scale``: (V, d) -> (V, k).

    float64 for float64 input; float32 input is centred and projected in float32 (the output is
    float32 anyway), which halves time and memory on large vocabularies.
    """
    Xt = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.asarray(X))
    dt = torch.float32 if Xt.dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.float64
    Xt = Xt.to(device=mu.device, dtype=dt)
    T = (components.T * scale).to(dt)  # (d, k)
    return (Xt - mu.to(dt)) @ T


def whitening_reference(W: Array, p: Array | None = None, *, ddof: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The official recipe (``src/zipfian_whitening.py``): SVD of the sqrt(p)-weighted centred matrix.

    Args:
        W: (V, d) word vectors.
        p: (V,) probabilities (summing to 1); ``None`` = uniform (the ``UniformWhitening`` baseline).
        ddof: 1 divides the uniform variances by V-1 as the official ``UniformWhitening`` does.

    Returns:
        ``(whitened W (V, d), transformation matrix T (d, d))`` with whitened = (W - mu) @ T, signs
        fixed as in :func:`whitening_from_moments` so both paths are comparable.
    """
    Wt = as_float64(W)
    V = Wt.shape[0]
    pt = torch.full((V,), 1.0 / V, dtype=torch.float64) if p is None else normalize_weights(p, V)
    mu = pt @ Wt  # (d,)
    Wc = Wt - mu  # (V, d)
    Wp = Wc * pt.sqrt()[:, None]  # diag(sqrt p) (W - mu)
    _, S, Vh = torch.linalg.svd(Wp, full_matrices=False)  # Wp = U S Vh
    if ddof:
        S = S * math.sqrt(V / (V - ddof))
    Vh = _flip_signs(Vh)
    T = Vh.T / S  # (d, d): V S^-1
    return Wc @ T, T


# ----------------------------------------------------------------------------------------------------
# Principal-component removal (ABTT, SIF, uSIF)
# ----------------------------------------------------------------------------------------------------

def top_components(X: Array, k: int, *, center: bool, p: Array | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k principal directions of X (uncentred second moment when ``center=False``, as SIF's TruncatedSVD).

    Returns ``(components (k, d), singular values**2 / V-ish energies (k,))`` from the (weighted) second-moment matrix.
    """
    Xt = as_float64(X)
    V = Xt.shape[0]
    pt = torch.full((V,), 1.0 / V, dtype=torch.float64, device=Xt.device) if p is None else as_float64(p, Xt.device)
    if center:
        _, M = weighted_moments(Xt, pt)
    else:
        M = (Xt * pt[:, None]).T @ Xt
    lam, vecs = torch.linalg.eigh((M + M.T) / 2)
    lam, vecs = lam.flip(0).clamp_min(0), vecs.flip(1)
    return _flip_signs(vecs[:, :k].T.contiguous()), lam


def sif_weights(p: Array, a: float = 1e-3) -> torch.Tensor:
    """SIF word weights ``a / (a + p(w))`` (Arora et al., ICLR 2017, Alg. 1; paper default a = 1e-3)."""
    if not a > 0:
        raise ValueError(f"SIF parameter a must be > 0, got {a}")
    return a / (a + as_float64(p))


def usif_a(p: Array, n: int = 11) -> float:
    """uSIF's a from the vocabulary (Ethayarajh, RepL4NLP 2018, Sec. 4).

    ``threshold = 1 - (1 - 1/|V|)^n``, ``alpha = |{w: p(w) > threshold}| / |V|``, ``Z = |V|/2``,
    ``a = (1 - alpha) / (alpha Z)``; ``n`` is the expected sentence length (11 for STS).
    """
    pt = as_float64(p)
    V = pt.numel()
    if n < 1:
        raise ValueError(f"uSIF sentence length n must be a positive integer, got {n}")
    threshold = 1 - (1 - 1 / V) ** n
    alpha = float((pt > threshold).sum()) / V
    if alpha == 0:
        raise ValueError(f"uSIF: no word has p(w) > threshold {threshold:.3g}; the vocabulary is too small")
    return (1 - alpha) / (alpha * 0.5 * V)


def usif_weights(p: Array, n: int = 11, a: float | None = None) -> torch.Tensor:
    """uSIF word weights ``a / (a/2 + p(w))`` with ``a`` from :func:`usif_a` unless given."""
    a = usif_a(p, n) if a is None else a
    return a / (0.5 * a + as_float64(p))
