"""Integer and FP8 quantization: torch references (the specification) and dispatching wrappers.

Conventions:
* symmetric int-k: ``scale = clip_ratio * amax / (2^(k-1) - 1)`` along ``dim`` (per token for activations
  ``[..., in]`` with ``dim=-1``, per output channel for weights ``[out, in]`` with ``dim=-1``),
  ``q = clamp(round(x / scale), -2^(k-1), 2^(k-1) - 1)``, rounding half to even;
* asymmetric int-k: ``scale = clip_ratio * (max - min) / (2^k - 1)``, ``zero = round(-min / scale)``,
  ``q = clamp(round(x / scale) + zero, 0, 2^k - 1)``;
* int4 packing: pairs along the last dim, element ``2i`` in the low nibble, ``2i + 1`` in the high one;
* FP8 e4m3 block scaling (DeepSeek-V3, Sec. 3.3): one fp32 scale per ``block`` tile (``(1, 128)`` for
  activations, ``(128, 128)`` for weights), ``scale = amax / 448`` (optionally rounded up to a power of two),
  ``x_fp8 = e4m3(x / scale)``.
"""

from __future__ import annotations

import torch

from papercommon.kernels.backend import resolve_backend

FP8_E4M3_MAX = 448.0
_EPS = 1e-8


def _check_float(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {got}")


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer in [2, 8], got {bits!r}")


def _check_clip(clip_ratio: float) -> None:
    if not 0 < clip_ratio <= 1:
        raise ValueError(f"clip_ratio must be in (0, 1], got {clip_ratio}")


def _check_finite_scale(scale: torch.Tensor) -> None:
    if not torch.isfinite(scale).all():
        raise ValueError("input contains NaN or inf: quantization scales are not finite")


# ----------------------------------------------------------------------------- symmetric int-k
def quantize_symmetric_reference(x: torch.Tensor, bits: int, dim: int = -1, clip_ratio: float = 1.0
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int-``bits`` quantization along ``dim``; returns int8 codes and fp32 scales (keepdim)."""
    qmax = 2 ** (bits - 1) - 1
    xf = x.float()
    scale = (xf.abs().amax(dim, keepdim=True) * clip_ratio / qmax).clamp_min(_EPS)
    q = torch.round(torch.clamp(xf / scale, -qmax - 1, qmax)).to(torch.int8)
    return q, scale


def quantize_symmetric(x: torch.Tensor, bits: int, dim: int = -1, clip_ratio: float = 1.0, *,
                       backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int-k quantization (per token for activations, per channel for weights).

    Args:
        x: a floating-point tensor.
        bits: bit width in [2, 8].
        dim: the dimension reduced for the scale (``-1``: one scale per row).
        clip_ratio: the fraction of ``amax`` mapped to the largest code (clipping, in (0, 1]).
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.

    Returns:
        ``q`` int8 codes in ``[-2^(bits-1), 2^(bits-1) - 1]`` with ``x``'s shape, and ``scale`` fp32
        with ``dim`` kept as size 1; ``q * scale`` approximates ``x``.

    Example:
        >>> q, s = quantize_symmetric(torch.randn(4, 64), bits=4)
        >>> x_hat = dequantize_symmetric(q, s)
    """
    _check_float(x)
    _check_bits(bits)
    _check_clip(clip_ratio)
    if resolve_backend(backend, x) == "torch":
        q, scale = quantize_symmetric_reference(x, bits, dim, clip_ratio)
    else:
        from papercommon.kernels.triton_quant import quantize_rows

        xt = x.movedim(dim, -1)
        q, scale = quantize_rows(xt.reshape(-1, xt.shape[-1]), bits, clip_ratio, symmetric=True)[:2]
        q, scale = (t.reshape(*xt.shape[:-1], -1).movedim(-1, dim) for t in (q, scale))
    _check_finite_scale(scale)
    return q, scale


def dequantize_symmetric(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``q * scale`` in ``dtype``."""
    return (q.float() * scale).to(dtype)


class _FakeQuantSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits, dim, clip_ratio):
        q, scale = quantize_symmetric_reference(x, bits, dim, clip_ratio)
        return dequantize_symmetric(q, scale, x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None


def fake_quantize_symmetric(x: torch.Tensor, bits: int, dim: int = -1, clip_ratio: float = 1.0) -> torch.Tensor:
    """Quantize-dequantize with a straight-through gradient (identity in the backward pass)."""
    _check_float(x)
    _check_bits(bits)
    _check_clip(clip_ratio)
    return _FakeQuantSTE.apply(x, bits, dim, clip_ratio)


# ----------------------------------------------------------------------------- asymmetric int-k
def quantize_asymmetric_reference(x: torch.Tensor, bits: int, dim: int = -1, clip_ratio: float = 1.0
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int-``bits`` quantization; returns uint8 codes, fp32 scales and fp32 zero points."""
    qmax = 2**bits - 1
    xf = x.float()
    lo = xf.amin(dim, keepdim=True).clamp_max(0) * clip_ratio
    hi = xf.amax(dim, keepdim=True).clamp_min(0) * clip_ratio
    scale = ((hi - lo) / qmax).clamp_min(_EPS)
    zero = torch.round(-lo / scale)
    q = torch.clamp(torch.round(xf / scale) + zero, 0, qmax).to(torch.uint8)
    return q, scale, zero


def quantize_asymmetric(x: torch.Tensor, bits: int, dim: int = -1, clip_ratio: float = 1.0, *,
                        backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric per-row int-k quantization (as for a 4-bit KV cache).

    Returns:
        ``q`` uint8 codes in ``[0, 2^bits - 1]``, ``scale`` and ``zero`` fp32 (``dim`` kept);
        ``(q - zero) * scale`` approximates ``x``. The range always contains 0.
    """
    _check_float(x)
    _check_bits(bits)
    _check_clip(clip_ratio)
    if resolve_backend(backend, x) == "torch":
        q, scale, zero = quantize_asymmetric_reference(x, bits, dim, clip_ratio)
    else:
        from papercommon.kernels.triton_quant import quantize_rows

        xt = x.movedim(dim, -1)
        outs = quantize_rows(xt.reshape(-1, xt.shape[-1]), bits, clip_ratio, symmetric=False)
        q, scale, zero = (t.reshape(*xt.shape[:-1], -1).movedim(-1, dim) for t in outs)
    _check_finite_scale(scale)
    return q, scale, zero


def dequantize_asymmetric(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(q - zero) * scale`` in ``dtype``."""
    return ((q.float() - zero) * scale).to(dtype)


# ----------------------------------------------------------------------------- int4 packing
def _check_int4(q: torch.Tensor) -> None:
    if q.dtype not in (torch.int8, torch.uint8):
        raise TypeError(f"int4 codes must be int8 or uint8, got {q.dtype}")
    if q.shape[-1] % 2:
        raise ValueError(f"int4 packing pairs the last dim, which must be even, got {q.shape[-1]}")


def pack_int4_reference(q: torch.Tensor) -> torch.Tensor:
    """Pack int4 codes (int8 in [-8, 7] or uint8 in [0, 15]) two per byte along the last dim."""
    b = q.to(torch.uint8) & 0xF  # two's complement low nibble for signed codes
    return b[..., 0::2] | (b[..., 1::2] << 4)


def pack_int4(q: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Pack int4 codes two per byte: ``[..., 2n]`` int8/uint8 -> ``[..., n]`` uint8 (low nibble first)."""
    _check_int4(q)
    if resolve_backend(backend, q) == "torch":
        return pack_int4_reference(q)
    from papercommon.kernels.triton_quant import pack_int4_rows

    return pack_int4_rows(q.reshape(-1, q.shape[-1])).reshape(*q.shape[:-1], q.shape[-1] // 2)


def unpack_int4(packed: torch.Tensor, signed: bool = True) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: ``[..., n]`` uint8 -> ``[..., 2n]`` int8 (``signed``) or uint8."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed int4 data must be uint8, got {packed.dtype}")
    lo, hi = packed & 0xF, packed >> 4
    out = torch.stack([lo, hi], dim=-1).flatten(-2)
    if signed:
        return (out.to(torch.int8) ^ 8) - 8  # sign-extend the nibble
    return out


# ----------------------------------------------------------------------------- FP8 block scaling
def _check_block(x: torch.Tensor, block: tuple[int, int]) -> None:
    if len(block) != 2 or min(block) < 1:
        raise ValueError(f"block must be two positive sizes (rows, cols), got {block}")
    if block[0] != 1 and x.ndim != 2:
        raise ValueError(f"block {block} with more than one row needs a 2-D tensor, got shape {tuple(x.shape)}")
    if x.ndim < 1:
        raise ValueError("FP8 block quantization needs at least a 1-D tensor")


def _pow2_ceil(s: torch.Tensor) -> torch.Tensor:
    """The smallest power of two >= s (exact, through frexp)."""
    m, e = torch.frexp(s)
    return torch.ldexp(torch.ones_like(s), e - (m == 0.5).to(e.dtype))


def fp8_quantize_blockwise_reference(x: torch.Tensor, block: tuple[int, int] = (1, 128), pow2_scale: bool = False
                                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-scaled FP8 e4m3 quantization of a 2-D ``[M, N]`` tensor (edges padded with zeros)."""
    b0, b1 = block
    M, N = x.shape
    mb, nb = -(-M // b0), -(-N // b1)
    xp = torch.nn.functional.pad(x.float(), (0, nb * b1 - N, 0, mb * b0 - M))
    tiles = xp.reshape(mb, b0, nb, b1)
    amax = tiles.abs().amax(dim=(1, 3)).clamp_min(1e-4)  # (mb, nb)
    scale = amax / FP8_E4M3_MAX
    if pow2_scale:
        scale = _pow2_ceil(scale)
    y = (tiles / scale[:, None, :, None]).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX)
    y = y.reshape(mb * b0, nb * b1)[:M, :N].to(torch.float8_e4m3fn)
    return y, scale


def fp8_quantize_blockwise(x: torch.Tensor, block: tuple[int, int] = (1, 128), pow2_scale: bool = False, *,
                           backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Fine-grained FP8 e4m3 quantization with one fp32 scale per tile (DeepSeek-V3, Sec. 3.3.2).

    Args:
        x: ``[..., K]`` activations with ``block=(1, b)`` (one scale per token per ``b`` channels), or a 2-D
            ``[M, N]`` weight with ``block=(128, 128)``. Sizes need not divide: edge tiles are partial.
        block: tile shape ``(rows, cols)``.
        pow2_scale: round every scale up to a power of two (the UE8M0 scale format).
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.

    Returns:
        ``x_fp8`` (``torch.float8_e4m3fn``, ``x``'s shape) and ``scale`` fp32 of shape
        ``[..., ceil(K / b)]`` (activations) or ``[ceil(M / 128), ceil(N / 128)]`` (weights).
    """
    _check_float(x)
    _check_block(x, block)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    if resolve_backend(backend, x) == "torch":
        y, scale = fp8_quantize_blockwise_reference(x2, block, pow2_scale)
    else:
        from papercommon.kernels.triton_quant import fp8_quantize_tiles

        y, scale = fp8_quantize_tiles(x2, block, pow2_scale)
    _check_finite_scale(scale)
    if block[0] == 1:
        return y.reshape(x.shape), scale.reshape(*lead, -1)
    return y, scale


def fp8_dequantize_blockwise(x_fp8: torch.Tensor, scale: torch.Tensor, block: tuple[int, int] = (1, 128),
                             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of :func:`fp8_quantize_blockwise`: each tile times its scale, in ``dtype``."""
    b0, b1 = block
    x2 = x_fp8.reshape(-1, x_fp8.shape[-1]).float()
    s2 = scale.reshape(-1, scale.shape[-1])
    s = s2.repeat_interleave(b0, 0)[: x2.shape[0]].repeat_interleave(b1, 1)[:, : x2.shape[1]]
    return (x2 * s).reshape(x_fp8.shape).to(dtype)
