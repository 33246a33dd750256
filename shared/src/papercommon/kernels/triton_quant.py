"""Triton kernels for the shared quantization ops (references in :mod:`papercommon.kernels.quant`).

Bit-exactness with the torch references: divisions use ``div_rn`` (IEEE round-to-nearest, as torch), and
round-half-to-even is done with the fp32 magic constant 1.5 * 2^23 (exact for |v| < 2^22). FP8 values are
first rounded to the e4m3 grid in fp32 (exponent read from the bits), so the final cast is exact on every
device and in the interpreter.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_RNE_MAGIC = tl.constexpr(12582912.0)  # 1.5 * 2**23


@triton.jit
def _rne(v):
    """Round half to even (fp32, |v| < 2^22)."""
    return (v + _RNE_MAGIC) - _RNE_MAGIC


@triton.jit
def _quantize_rows_kernel(x_ptr, q_ptr, scale_ptr, zero_ptr, n_cols, stride_x, stride_q, clip_ratio,
                          BITS: tl.constexpr, SYMMETRIC: tl.constexpr, BLOCK: tl.constexpr):
    # One program per row: reduce the row for its range, then scale, round and clamp.
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if SYMMETRIC:
        qmax: tl.constexpr = 2 ** (BITS - 1) - 1
        amax = tl.max(tl.abs(x), axis=0) * clip_ratio
        scale = tl.maximum(tl.math.div_rn(amax, qmax * 1.0), 1e-8)
        v = tl.clamp(tl.math.div_rn(x, scale), -qmax - 1.0, qmax * 1.0)
        q = _rne(v)
        tl.store(q_ptr + row * stride_q + cols, q.to(tl.int8), mask=mask)
    else:
        qmax: tl.constexpr = 2**BITS - 1
        lo = tl.minimum(tl.min(tl.where(mask, x, 0.0), axis=0), 0.0) * clip_ratio
        hi = tl.maximum(tl.max(tl.where(mask, x, 0.0), axis=0), 0.0) * clip_ratio
        scale = tl.maximum(tl.math.div_rn(hi - lo, qmax * 1.0), 1e-8)
        zero = _rne(tl.math.div_rn(-lo, scale))
        q = tl.clamp(_rne(tl.math.div_rn(x, scale)) + zero, 0.0, qmax * 1.0)
        tl.store(q_ptr + row * stride_q + cols, q.to(tl.uint8), mask=mask)
        tl.store(zero_ptr + row, zero)
    tl.store(scale_ptr + row, scale)


def quantize_rows(x: torch.Tensor, bits: int, clip_ratio: float, symmetric: bool):
    """Quantize each row of a 2-D tensor; returns (q, scale [R, 1], zero [R, 1] or None)."""
    x = x.contiguous()
    R, C = x.shape
    q = torch.empty(R, C, dtype=torch.int8 if symmetric else torch.uint8, device=x.device)
    scale = torch.empty(R, 1, dtype=torch.float32, device=x.device)
    zero = torch.empty(R, 1, dtype=torch.float32, device=x.device)
    if R:
        _quantize_rows_kernel[(R,)](x, q, scale, zero, C, x.stride(0), q.stride(0), float(clip_ratio),
                                    BITS=bits, SYMMETRIC=symmetric, BLOCK=triton.next_power_of_2(C))
    return q, scale, (None if symmetric else zero)


@triton.jit
def _pack_int4_kernel(q_ptr, out_ptr, n_out, BLOCK: tl.constexpr):
    # One program per row and BLOCK output bytes: low nibble = even element, high nibble = odd one.
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_out
    lo = tl.load(q_ptr + row * 2 * n_out + 2 * offs, mask=mask, other=0).to(tl.int32) & 0xF
    hi = tl.load(q_ptr + row * 2 * n_out + 2 * offs + 1, mask=mask, other=0).to(tl.int32) & 0xF
    tl.store(out_ptr + row * n_out + offs, (lo | (hi << 4)).to(tl.uint8), mask=mask)


def pack_int4_rows(q: torch.Tensor) -> torch.Tensor:
    q = q.contiguous()
    R, C = q.shape
    out = torch.empty(R, C // 2, dtype=torch.uint8, device=q.device)
    BLOCK = 1024
    if R and C:
        _pack_int4_kernel[(R, triton.cdiv(C // 2, BLOCK))](q, out, C // 2, BLOCK=BLOCK)
    return out


@triton.jit
def _round_to_e4m3(v):
    """Round fp32 values in [-448, 448] to the nearest e4m3 value (half to even), staying in fp32."""
    bits = v.to(tl.int32, bitcast=True)
    exp = ((bits >> 23) & 0xFF) - 127
    exp = tl.maximum(exp, -6)  # e4m3 subnormals share the quantum of the smallest normal binade
    quantum = ((exp - 3 + 127) << 23).to(tl.float32, bitcast=True)  # 2^(exp - 3): 3 mantissa bits
    r = _rne(tl.abs(v) / quantum) * quantum  # division by a power of two is exact
    return tl.where(v < 0, -r, r)  # keep the sign of values that round to zero (-0.0)


@triton.jit
def _fp8_quantize_kernel(x_ptr, y_ptr, s_ptr, M, N, n_col_blocks, POW2: tl.constexpr,
                         B0: tl.constexpr, B1: tl.constexpr):
    # One program per (B0 x B1) tile: amax -> scale -> scaled values rounded to e4m3.
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rows = pid_m * B0 + tl.arange(0, B0)
    cols = pid_n * B1 + tl.arange(0, B1)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    offs = rows[:, None] * N + cols[None, :]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    amax = tl.maximum(tl.max(tl.max(tl.abs(x), axis=1), axis=0), 1e-4)
    scale = tl.math.div_rn(amax, 448.0)
    if POW2:  # round up to a power of two, exactly, from the fp32 bits
        sb = scale.to(tl.int32, bitcast=True)
        e = (sb >> 23) & 0xFF
        e = tl.where((sb & 0x7FFFFF) == 0, e, e + 1)
        scale = (e << 23).to(tl.float32, bitcast=True)
    y = tl.clamp(tl.math.div_rn(x, scale), -448.0, 448.0)
    tl.store(y_ptr + offs, _round_to_e4m3(y).to(tl.float8e4nv), mask=mask)
    tl.store(s_ptr + pid_m * n_col_blocks + pid_n, scale)


def fp8_quantize_tiles(x: torch.Tensor, block: tuple[int, int], pow2_scale: bool):
    x = x.contiguous()
    M, N = x.shape
    b0, b1 = block
    for b in block:
        if b & (b - 1):
            raise ValueError(f"the Triton FP8 kernel needs power-of-two block sizes, got {block}")
    mb, nb = triton.cdiv(M, b0), triton.cdiv(N, b1)
    y = torch.empty(M, N, dtype=torch.float8_e4m3fn, device=x.device)
    scale = torch.empty(mb, nb, dtype=torch.float32, device=x.device)
    if M and N:
        _fp8_quantize_kernel[(mb, nb)](x, y, scale, M, N, nb, POW2=pow2_scale, B0=b0, B1=b1)
    return y, scale
