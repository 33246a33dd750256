"""Pure reference math of FlatQuant: Kronecker transforms, quantizers, int4 packing, GPTQ, flatness.

Notation (paper, Sec. 3): a linear layer ``Y = X W^T`` becomes ``Y = (X P)(W P^{-T})^T`` with an invertible
``P = P1 (x) P2`` (Kronecker product, Eq. 4), so ``X P`` costs O(n (n1 + n2)) instead of O(n^2).

Shapes: ``x`` is ``[..., n]`` with ``n = n1 * n2``; a weight is ``[out, n]`` and is transformed along its
input dimension. Quantizers act along the last dimension (per token for activations, per output
channel for weights, per token and head for the KV cache).
"""

from __future__ import annotations

import math

import torch

# ----------------------------------------------------------------------------- Kronecker transforms


def get_decompose_dim(n: int) -> tuple[int, int]:
    """The Kronecker factor sizes ``(n1, n2)`` of the official code: ``n = a^2 - b^2 = (a - b)(a + b)``
    with the smallest ``a >= sqrt(n)``, i.e. the most balanced factorisation of that form.

    576 -> (24, 24), 1536 -> (32, 48), 4096 -> (64, 64), 11008 -> (86, 128).

    Raises:
        ValueError: when ``n`` has no factorisation with both factors >= 2 (n prime, n = 4, or n = 2 mod 4,
            which is no difference of two squares).
    """
    if not isinstance(n, int) or n < 4:
        raise ValueError(f"Kronecker transform: expected a size n >= 4, got {n!r}")
    if n % 4 == 2:
        raise ValueError(f"Kronecker transform: size {n} = 2 (mod 4) is no difference of squares a^2 - b^2, so it has "
                         "no (a - b) x (a + b) factorisation; expected n odd or divisible by 4")
    a = math.isqrt(n)
    if a * a < n:
        a += 1
    while True:
        b2 = a * a - n
        b = math.isqrt(b2)
        if b * b == b2:
            break
        a += 1
    n1, n2 = a - b, a + b
    if n1 < 2:
        raise ValueError(f"Kronecker transform: size {n} only factorises as 1 x {n} (it is prime); expected a size "
                         "with a factorisation n = n1 * n2, n1 >= 2")
    return n1, n2


def kronecker_matmul(x: torch.Tensor, p1: torch.Tensor | None, p2: torch.Tensor | None) -> torch.Tensor:
    """``x (P1 (x) P2)`` without forming the Kronecker product (Eq. 4): ``P1^T X~ P2`` on ``X~ = x.view(n1, n2)``.

    Args:
        x: ``[..., n1 * n2]``.
        p1: ``[n1, n1]`` or None (identity).
        p2: ``[n2, n2]`` or None (identity).
    """
    if p1 is None and p2 is None:
        return x
    n1 = p1.shape[0] if p1 is not None else x.shape[-1] // p2.shape[0]
    n2 = p2.shape[0] if p2 is not None else x.shape[-1] // n1
    if n1 * n2 != x.shape[-1]:
        raise ValueError(f"kronecker_matmul: expected last dim {n1} x {n2} = {n1 * n2}, got {x.shape[-1]}")
    xs = x.reshape(*x.shape[:-1], n1, n2)  # (..., n1, n2)
    if p2 is not None:
        xs = xs @ p2.to(x.dtype)  # X~ P2
    if p1 is not None:
        xs = p1.to(x.dtype).transpose(0, 1) @ xs  # P1^T (X~ P2)
    return xs.reshape(x.shape)


def kronecker_matmul_reference(x: torch.Tensor, p1: torch.Tensor | None, p2: torch.Tensor | None) -> torch.Tensor:
    """``x @ kron(P1, P2)`` with the dense Kronecker product (slow, for tests)."""
    n = x.shape[-1]
    if p1 is None:
        p1 = torch.eye(n // p2.shape[0], dtype=x.dtype, device=x.device)
    if p2 is None:
        p2 = torch.eye(n // p1.shape[0], dtype=x.dtype, device=x.device)
    return x @ torch.kron(p1.to(x.dtype), p2.to(x.dtype))


def cayley(a: torch.Tensor) -> torch.Tensor:
    """Cayley map ``Q = (I - A/2)^{-1} (I + A/2)`` of the skew ``A = tril(a, -1) - tril(a, -1)^T`` built from the
    strict lower triangle of ``a`` (torch's ``parametrizations.orthogonal(orthogonal_map="cayley",
    use_trivialization=False)``, the official parametrisation: one free entry per skew pair)."""
    low = torch.tril(a, -1)
    skew = low - low.transpose(-1, -2)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.linalg.solve(eye - skew / 2, eye + skew / 2)


def random_orthogonal(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """A Haar-random orthogonal ``[n, n]`` (QR of a Gaussian with the sign fix), the official init."""
    g = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.to(dtype)


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, math.isqrt(p) + 1))


def _paley(q: int) -> torch.Tensor:
    """Paley construction I: a Hadamard matrix of order ``q + 1`` for a prime ``q = 3 (mod 4)``."""
    residues = {(i * i) % q for i in range(1, q)}
    chi = torch.tensor([0] + [1 if i in residues else -1 for i in range(1, q)], dtype=torch.float64)
    idx = torch.arange(q)
    s = chi[(idx[None, :] - idx[:, None]) % q]  # Jacobsthal matrix, skew for q = 3 mod 4
    h = torch.ones(q + 1, q + 1, dtype=torch.float64)
    h[1:, 0] = -1
    h[1:, 1:] = s + torch.eye(q, dtype=torch.float64)
    return h


def hadamard(n: int) -> torch.Tensor | None:
    """A (+-1) Hadamard matrix of order ``n`` (Sylvester doubling of a Paley matrix), or None if this
    construction has none (e.g. n = 9)."""
    k, m = 0, n
    while True:
        if m == 1:
            base = torch.ones(1, 1, dtype=torch.float64)
            break
        if m % 4 == 0 and _is_prime(m - 1) and (m - 1) % 4 == 3:
            base = _paley(m - 1)
            break
        if m % 2:
            return None
        m //= 2
        k += 1
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    for _ in range(k):
        base = torch.kron(base, h2)
    return base


def random_hadamard(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """QuaRot's randomised Hadamard ``D H / sqrt(n)`` (D random signs): orthogonal, spreads outliers evenly.
    Falls back to a random orthogonal matrix when no Hadamard matrix of order ``n`` is constructed."""
    h = hadamard(n)
    if h is None:
        return random_orthogonal(n, generator, dtype)
    signs = torch.randint(0, 2, (n,), generator=generator).double() * 2 - 1
    return (signs[:, None] * h / math.sqrt(n)).to(dtype)


# ----------------------------------------------------------------------------- quantizers


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even with a straight-through gradient."""
    return (x.round() - x).detach() + x


def _check_finite_range(r: torch.Tensor, name: str) -> None:
    """A row range (amax / amin, small) is non-finite exactly when its row holds NaN or inf."""
    if not bool(torch.isfinite(r).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or inf entries")


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"quantizer: expected bits in 2..8, got {bits!r}")


def sym_scale(x: torch.Tensor, bits: int, clip_max: torch.Tensor | float = 1.0,
              clip_min: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Symmetric scale along the last dim, ``[..., 1]`` (official ``ActivationQuantizer.get_scale_zero``, sym):
    the range ``[c_min min(x, 0), c_max max(x, 0)]`` always includes 0, the scale is
    ``max(|c_min min(x, 0)|, c_max max(x, 0)) / (2^(b-1) - 1)``, and an all-zero range gets scale 1
    (official ``scale[xmax == 0] = 1``).

    ``clip_max`` / ``clip_min`` are the clipping ratios (sigmoid of the learnable LAC logits, Sec. 3.3). The
    codes are then clamped to ``[-2^(b-1), 2^(b-1) - 1]``, so the representable (clipped) range is
    ``[-2^(b-1) scale, (2^(b-1) - 1) scale]``.
    """
    maxq = 2 ** (bits - 1) - 1
    xmax = x.amax(-1, keepdim=True).clamp_min(0) * clip_max
    xmin = x.amin(-1, keepdim=True).clamp_max(0) * clip_min
    absmax = torch.maximum(xmin.abs(), xmax)
    _check_finite_range(absmax, "quantizer input")
    scale = absmax / maxq
    return torch.where(scale == 0, torch.ones_like(scale), scale)  # all zero (or underflow): scale 1, codes 0


def quantize_sym(x: torch.Tensor, bits: int, clip_max: torch.Tensor | float = 1.0,
                 clip_min: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric integer codes ``clamp(round(x / s), -2^(b-1), 2^(b-1) - 1)`` (int8) and the scale ``s``."""
    _check_bits(bits)
    scale = sym_scale(x, bits, clip_max, clip_min)
    q = torch.clamp(torch.round(x / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q.to(torch.int8), scale


def fake_quantize_sym(x: torch.Tensor, bits: int, clip_max: torch.Tensor | float = 1.0,
                      clip_min: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Quantize-dequantize, symmetric, along the last dim, with a straight-through estimator (gradients reach
    ``x`` and, through the scale, the clipping factors)."""
    if bits >= 16:
        return x
    _check_bits(bits)
    scale = sym_scale(x, bits, clip_max, clip_min)
    q = torch.clamp(round_ste(x / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q * scale


def asym_params(x: torch.Tensor, bits: int, clip_max: torch.Tensor | float = 1.0,
                clip_min: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric scale and zero point along the last dim, both ``[..., 1]`` (official
    ``ActivationQuantizer.get_scale_zero``): the range ``[min(x, 0) c_min, max(x, 0) c_max]`` always includes 0,
    an all-zero row gets the range [-1, 1], and the zero point is ``round(-min / scale)`` with **plain**
    rounding (no gradient through the zero point; the codes' rounding is straight-through)."""
    maxq = 2**bits - 1
    xmax = x.amax(-1, keepdim=True).clamp_min(0) * clip_max
    xmin = x.amin(-1, keepdim=True).clamp_max(0) * clip_min
    empty = (xmax == 0) & (xmin == 0)
    xmax = torch.where(empty, torch.ones_like(xmax), xmax)
    xmin = torch.where(empty, -torch.ones_like(xmin), xmin)
    scale = ((xmax - xmin) / maxq).clamp_min(1e-8)
    _check_finite_range(scale, "quantizer input")
    zero = torch.round(-xmin / scale).detach()
    return scale, zero


def quantize_asym(x: torch.Tensor, bits: int, clip_max: torch.Tensor | float = 1.0,
                  clip_min: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric codes in ``[0, 2^b - 1]`` (uint8), scale and zero point."""
    _check_bits(bits)
    scale, zero = asym_params(x, bits, clip_max, clip_min)
    q = torch.clamp(torch.round(x / scale) + zero, 0, 2**bits - 1)
    return q.to(torch.uint8), scale, zero


def fake_quantize_asym(x: torch.Tensor, bits: int, clip_max: torch.Tensor | float = 1.0,
                       clip_min: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Asymmetric quantize-dequantize along the last dim with a straight-through estimator."""
    if bits >= 16:
        return x
    _check_bits(bits)
    scale, zero = asym_params(x, bits, clip_max, clip_min)
    q = torch.clamp(round_ste(x / scale) + zero, 0, 2**bits - 1)
    return (q - zero) * scale


def clip_rows(w: torch.Tensor, clip_max: torch.Tensor | float = 1.0,
              clip_min: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Learnable weight clipping (LWC, Sec. 3.3; official ``FlatQuantizedLinear.apply_wclip``): clamp each row of
    ``w [out, in]`` to ``[c_min * rowmin, c_max * rowmax]``. Applied to the weight *before* its quantization
    scale is computed, so the scale follows the clipped range; gradients reach the clip ratios through the
    clamp bounds."""
    if not torch.is_tensor(clip_max) and not torch.is_tensor(clip_min) and clip_max == 1.0 and clip_min == 1.0:
        return w
    wmax = w.amax(-1, keepdim=True) * clip_max
    wmin = w.amin(-1, keepdim=True) * clip_min
    return torch.clamp(w, min=wmin, max=wmax)


def weight_scale_sym(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row symmetric weight scale (official ``WeightQuantizer.find_params``, GPTQ's):
    ``max(|min(w, 0)|, max(w, 0)).clamp(1e-5) / (2^(b-1) - 1)``, ``[out, 1]``."""
    maxq = 2 ** (bits - 1) - 1
    wmax = w.amax(-1, keepdim=True).clamp_min(0)
    wmin = w.amin(-1, keepdim=True).clamp_max(0)
    absmax = torch.maximum(wmin.abs(), wmax).clamp_min(1e-5)
    _check_finite_range(absmax, "weight")
    return absmax / maxq


def quantize_weight_sym(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row weight codes (int8) and scales of an (already clipped) weight."""
    _check_bits(bits)
    scale = weight_scale_sym(w, bits)
    q = torch.clamp(torch.round(w / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q.to(torch.int8), scale


def fake_quantize_weight(w: torch.Tensor, bits: int, sym: bool = True) -> torch.Tensor:
    """Weight quantize-dequantize per row (STE rounding, gradient through the scale), after clipping."""
    if bits >= 16:
        return w
    _check_bits(bits)
    if not sym:
        return fake_quantize_asym(w, bits)
    scale = weight_scale_sym(w, bits)
    return torch.clamp(round_ste(w / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * scale


def fake_quantize(x: torch.Tensor, bits: int, sym: bool, clip_max: torch.Tensor | float = 1.0,
                  clip_min: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Symmetric or asymmetric fake quantization along the last dim (identity for ``bits >= 16``)."""
    if sym:
        return fake_quantize_sym(x, bits, clip_max, clip_min)
    return fake_quantize_asym(x, bits, clip_max, clip_min)


# ----------------------------------------------------------------------------- int4 storage and int matmul


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack signed int4 codes (int8 in [-8, 7]) two per byte along the last dim: element ``2j`` in the low
    nibble, ``2j + 1`` in the high nibble (``papercommon.kernels.pack_int4``'s layout). ``[..., n] -> [..., n / 2]``."""
    from papercommon.kernels import pack_int4 as _pack

    if q.shape[-1] % 2:
        raise ValueError(f"pack_int4: expected an even last dim, got {q.shape[-1]}")
    if q.dtype != torch.int8:
        raise ValueError(f"pack_int4: expected int8 codes, got {q.dtype}")
    return _pack(q)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: ``[..., n / 2]`` uint8 -> ``[..., n]`` int8 in [-8, 7]."""
    from papercommon.kernels import unpack_int4 as _unpack

    if packed.dtype != torch.uint8:
        raise ValueError(f"unpack_int4: expected uint8, got {packed.dtype}")
    return _unpack(packed, signed=True)


def int_matmul_reference(xq: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
    """Exact integer ``xq @ wq^T`` (int32) of int8 codes ``[M, K]`` and ``[N, K]``, computed in float64
    (exact for |sums| < 2^53)."""
    return (xq.double() @ wq.double().transpose(0, 1)).to(torch.int32)


def int_matmul(xq: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
    """``xq @ wq^T`` in int32: ``torch._int_mm`` (int8 tensor cores) on a GPU, :func:`int_matmul_reference`
    on the CPU. ``_int_mm`` needs M > 16 and K, N multiples of 8; other shapes use the reference."""
    m, k = xq.shape
    n = wq.shape[0]
    if xq.is_cuda and m > 16 and k % 8 == 0 and n % 8 == 0:
        return torch._int_mm(xq.contiguous(), wq.transpose(0, 1).contiguous())
    return int_matmul_reference(xq, wq)


# ----------------------------------------------------------------------------- SmoothQuant scales


def smooth_scales(act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-channel scale ``s_j = max|W_:,j|^(1 - alpha) / max|X_:,j|^alpha`` (clamped >= 1e-5), applied as
    ``X diag(s)`` and ``W diag(1/s)`` (SmoothQuant Eq. 4 written in FlatQuant's convention)."""
    s = weight_absmax.clamp_min(1e-5).pow(1 - alpha) / act_absmax.clamp_min(1e-5).pow(alpha)
    return s.clamp_min(1e-5)


# ----------------------------------------------------------------------------- GPTQ


@torch.no_grad()
def gptq_quantize(w: torch.Tensor, h: torch.Tensor, bits: int, sym: bool = True, clip_max: torch.Tensor | float = 1.0,
                  clip_min: torch.Tensor | float = 1.0, percdamp: float = 0.01, blocksize: int = 128
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPTQ (Frantar et al. 2023): quantize ``w [out, in]`` column by column, compensating each column's error
    on the not yet quantized ones with the inverse Hessian ``H = 2 X^T X [in, in]``. Per-output-channel
    grids are fixed up front from the LWC-clipped rows, as RTN.

    Returns:
        ``(w_q, scale, zero)``: the dequantized weight (float64) and its per-row grid, ``[out, 1]`` each.
    """
    _check_bits(bits)
    w = w.double().clone()
    h = h.double().clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    w = clip_rows(w, clip_max, clip_min)  # LWC clamps the weight before its grid is fixed (official order)
    if sym:
        scale = weight_scale_sym(w, bits)
        lo, hi, zero = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, torch.zeros_like(scale)
    else:
        scale, zero = asym_params(w, bits)
        lo, hi = 0, 2**bits - 1
    h += percdamp * torch.diagonal(h).mean() * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros_like(w)
    n = w.shape[1]
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        w1, err1, hinv1 = w[:, i1:i2].clone(), torch.zeros_like(w[:, i1:i2]), hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, i:i + 1]
            qc = (torch.clamp(torch.round(col / scale) + zero, lo, hi) - zero) * scale
            q[:, i1 + i:i1 + i + 1] = qc
            err = (col - qc) / hinv1[i, i]
            w1[:, i:] -= err @ hinv1[i:i + 1, i:]
            err1[:, i:i + 1] = err
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return q, scale, zero


# ----------------------------------------------------------------------------- flatness


def kurtosis(x: torch.Tensor) -> float:
    """Kurtosis ``E[(x - mu)^4] / sigma^4`` of all entries (3 for a Gaussian; large with outliers)."""
    x = x.double().flatten()
    c = x - x.mean()
    return float((c.pow(4).mean() / c.pow(2).mean().pow(2).clamp_min(1e-300)).item())


def channel_magnitudes(x: torch.Tensor) -> torch.Tensor:
    """Per-channel max ``|x|`` over all tokens (or rows), sorted descending: the curves of the paper's Fig. 1."""
    return x.reshape(-1, x.shape[-1]).abs().amax(0).sort(descending=True).values


def flatness(x: torch.Tensor, k: int = 1) -> dict[str, float]:
    """Flatness summary of an activation ``[..., C]`` or weight ``[out, C]`` along its channels: kurtosis,
    and top-k channel magnitude over the median channel magnitude (1 is perfectly flat)."""
    mags = channel_magnitudes(x)
    return {"kurtosis": kurtosis(x), f"top{k}_over_median": float(mags[:k].mean() / mags.median().clamp_min(1e-12))}


# ----------------------------------------------------------------------------- Hadamard (QuaRot baseline timing)


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Fast Walsh-Hadamard transform along the last dim (power of two), orthonormal: ``x H / sqrt(n)``,
    ``log2(n)`` butterfly stages as QuaRot's ``fast_hadamard_transform``."""
    t, n = x.shape
    y, h = x, 1
    while h < n:
        y = y.reshape(t, n // (2 * h), 2, h)
        y = torch.stack((y[:, :, 0] + y[:, :, 1], y[:, :, 0] - y[:, :, 1]), dim=2)
        h *= 2
    return y.reshape(t, n) / math.sqrt(n)
