"""Triton FlashAttention-2 forward and backward with FastAttention's two-level tiling.

What is computed: ``O = softmax(scale * Q K^T + mask) V`` and ``LSE = logsumexp(scale * Q K^T + mask)``
per row, for [batch, heads, seq, head_dim] tensors with GQA (query head ``h`` reads KV head
``h // G``), bottom-right aligned causal / sliding-window masks, and Lq != Lk.

Stages of the forward kernel (one program per [BLOCK_M query rows, one head]):

1. load the Q tile once;
2. find the KV range the band allows and split it into three segments: a masked head, an unmasked body
   (tiles fully inside the band: no mask arithmetic, FastAttention's "full tiles need no mask") and a
   masked tail; tiles outside the band are never visited (tiling-mask, §3.2, with the mask computed from
   indices in registers, so it costs no memory at all);
3. walk each segment in first-level blocks of ``BLOCK_N_OUTER`` keys; inside each, a statically unrolled
   loop over ``BLOCK_N_OUTER / BLOCK_N`` second-level sub-tiles runs the online-softmax update (two-level
   tiling, §3.1: the unrolled sub-tiles let the compiler overlap the loads and ``tl.dot`` of sub-tile
   n + 1 with the exp / rescale of sub-tile n, the GPU analogue of the Cube/Vector pipeline);
4. normalise, write O and LSE (natural log; -inf and O = 0 for rows with no visible key).

The backward follows the Triton tutorial's split: a dK/dV kernel per KV block that loops over the G
query heads of its group and the query blocks the band allows (so dK/dV need no atomics under GQA),
and a dQ kernel per query block. ``Delta = rowsum(dO * O) - dLSE`` is precomputed in torch.

Importing this module never needs Triton or a GPU; the kernels are defined only when Triton imports.
"""

from __future__ import annotations

import math
import os

import torch

from fastattention.config import TilingConfig
from fastattention.masks import TilingMask

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised only without triton
    triton = tl = None
    HAS_TRITON = False

_BIG = 1 << 30  # "unbounded" band edge
LOG2E = 1.4426950408889634


def has_triton() -> bool:
    return HAS_TRITON


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def unsupported_reason(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: TilingMask,
                       dense: torch.Tensor | None) -> str | None:
    """Why the Triton kernel cannot run this call (None if it can)."""
    if not HAS_TRITON:
        return "triton is not installed (pip install triton)"
    if not (q.is_cuda or (q.device.type == "cpu" and _interpret())):
        return f"inputs are on {q.device}; the Triton kernels need CUDA (or TRITON_INTERPRET=1 on the CPU)"
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"dtype {q.dtype} is not supported (expected float16, bfloat16 or float32)"
    d = q.shape[-1]
    if v.shape[-1] != d:
        return f"value head_dim {v.shape[-1]} differs from query head_dim {d}"
    if d > 256 or d < 1:
        return f"head_dim {d} is not supported (expected 1..256)"
    if dense is not None:
        return "dense tensor masks are only supported by the torch backend (use a TilingMask)"
    if mask.layout is not None:
        return "block-sparse TilingMask layouts are only supported by the torch backend"
    return None


if HAS_TRITON:

    @triton.jit
    def _fwd_segment(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                     offs_m, offs_d, seg_lo, seg_hi, Lk, OFF, LEFT, RIGHT, qk_scale,
                     D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_N_OUTER: tl.constexpr,
                     MASKED: tl.constexpr, PREC: tl.constexpr):
        """Online softmax over keys [seg_lo, seg_hi), first-level blocks with unrolled second-level sub-tiles."""
        for start_outer in range(seg_lo, seg_hi, BLOCK_N_OUTER):
            for sub in tl.static_range(BLOCK_N_OUTER // BLOCK_N):  # second level (FastAttention §3.1)
                offs_n = start_outer + sub * BLOCK_N + tl.arange(0, BLOCK_N)
                kv_ok = offs_n < seg_hi
                kt = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                             mask=kv_ok[None, :] & (offs_d[:, None] < D), other=0.0)  # (BLOCK_D, BLOCK_N)
                qk = tl.dot(q, kt, input_precision=PREC) * qk_scale  # log2 domain, (BLOCK_M, BLOCK_N)
                if MASKED:
                    r = offs_n[None, :] - (offs_m[:, None] + OFF)  # key - query position
                    ok = kv_ok[None, :] & (r <= RIGHT) & (r >= -LEFT) & (offs_n[None, :] < Lk)
                    qk = tl.where(ok, qk, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(qk, 1))
                m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
                p = tl.math.exp2(qk - m_safe[:, None])
                alpha = tl.math.exp2(m_i - m_safe)
                l_i = l_i * alpha + tl.sum(p, 1)
                vt = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                             mask=kv_ok[:, None] & (offs_d[None, :] < D), other=0.0)  # (BLOCK_N, BLOCK_D)
                acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision=PREC)
                m_i = m_new
        return acc, l_i, m_i

    @triton.jit
    def _attn_fwd_kernel(Q, K, V, O, LSE,
                         sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sob, soh, som, sod,
                         H, G, Lq, Lk, OFF, LEFT, RIGHT, qk_scale,
                         D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         BLOCK_N_OUTER: tl.constexpr, PREC: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        hk = h // G
        m0 = pid_m * BLOCK_M
        m1 = tl.minimum(m0 + BLOCK_M, Lq)
        offs_m = m0 + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                    mask=(offs_m[:, None] < Lq) & (offs_d[None, :] < D), other=0.0)
        k_base = K + b * skb + hk * skh
        v_base = V + b * svb + hk * svh
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        # keys any row of this block may see (tiling-mask: blocks outside the band are never visited)
        lo = tl.maximum(0, m0 + OFF - LEFT)
        lo = (lo // BLOCK_N_OUTER) * BLOCK_N_OUTER
        hi = tl.maximum(tl.minimum(Lk, m1 - 1 + OFF + RIGHT + 1), lo)
        # keys every row of the block sees: tiles there need no mask (all values below are >= lo >= 0,
        # so the integer divisions round down)
        full_lo = tl.minimum(tl.cdiv(tl.maximum(m1 - 1 + OFF - LEFT, lo), BLOCK_N_OUTER) * BLOCK_N_OUTER, hi)
        full_hi = tl.maximum(tl.minimum(m0 + OFF + RIGHT + 1, hi), full_lo)
        full_hi = full_lo + ((full_hi - full_lo) // BLOCK_N_OUTER) * BLOCK_N_OUTER
        acc, l_i, m_i = _fwd_segment(acc, l_i, m_i, q, k_base, v_base, skn, skd, svn, svd, offs_m, offs_d,
                                     lo, full_lo, Lk, OFF, LEFT, RIGHT, qk_scale,
                                     D, BLOCK_D, BLOCK_N, BLOCK_N_OUTER, True, PREC)
        acc, l_i, m_i = _fwd_segment(acc, l_i, m_i, q, k_base, v_base, skn, skd, svn, svd, offs_m, offs_d,
                                     full_lo, full_hi, Lk, OFF, LEFT, RIGHT, qk_scale,
                                     D, BLOCK_D, BLOCK_N, BLOCK_N_OUTER, False, PREC)
        acc, l_i, m_i = _fwd_segment(acc, l_i, m_i, q, k_base, v_base, skn, skd, svn, svd, offs_m, offs_d,
                                     full_hi, hi, Lk, OFF, LEFT, RIGHT, qk_scale,
                                     D, BLOCK_D, BLOCK_N, BLOCK_N_OUTER, True, PREC)
        empty = l_i == 0.0
        out = acc / tl.where(empty, 1.0, l_i)[:, None]
        lse = tl.where(empty, float("-inf"), (m_i + tl.math.log2(tl.where(empty, 1.0, l_i))) / 1.4426950408889634)
        row_ok = offs_m < Lq
        tl.store(O + b * sob + h * soh + offs_m[:, None] * som + offs_d[None, :] * sod,
                 out.to(O.dtype.element_ty), mask=row_ok[:, None] & (offs_d[None, :] < D))
        tl.store(LSE + pid_bh * Lq + offs_m, lse, mask=row_ok)

    @triton.jit
    def _attn_bwd_dkdv_kernel(Q, K, V, DO, LSE2, DELTA, DK, DV,
                              sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
                              H, HK, G, Lq, Lk, OFF, LEFT, RIGHT, qk_scale,
                              D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              PREC: tl.constexpr):
        """dK, dV for BLOCK_N keys of one KV head, summed over its G query heads. DO has Q's strides."""
        pid_n = tl.program_id(0)
        pid_bhk = tl.program_id(1)
        b = pid_bhk // HK
        hk = pid_bhk % HK
        n0 = pid_n * BLOCK_N
        offs_n = n0 + tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        kv_ok = (offs_n[:, None] < Lk) & (offs_d[None, :] < D)
        k = tl.load(K + b * skb + hk * skh + offs_n[:, None] * skn + offs_d[None, :] * skd, mask=kv_ok, other=0.0)
        v = tl.load(V + b * svb + hk * svh + offs_n[:, None] * svn + offs_d[None, :] * svd, mask=kv_ok, other=0.0)
        dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        n1 = tl.minimum(n0 + BLOCK_N, Lk)
        # queries that can see any key of this block: -LEFT <= key - (query + OFF) <= RIGHT
        lo = tl.maximum(0, n0 - OFF - RIGHT)
        lo = (lo // BLOCK_M) * BLOCK_M
        hi = tl.minimum(Lq, n1 - 1 - OFF + LEFT + 1)
        for gi in range(0, G):
            h = hk * G + gi
            q_base = Q + b * sqb + h * sqh
            do_base = DO + b * sqb + h * sqh
            for m0 in range(lo, hi, BLOCK_M):
                offs_m = m0 + tl.arange(0, BLOCK_M)
                row_ok = offs_m < Lq
                qt = tl.load(q_base + offs_m[None, :] * sqm + offs_d[:, None] * sqd,
                             mask=row_ok[None, :] & (offs_d[:, None] < D), other=0.0)  # (BLOCK_D, BLOCK_M)
                lse2 = tl.load(LSE2 + (b * H + h) * Lq + offs_m, mask=row_ok, other=float("inf"))
                qkt = tl.dot(k, qt, input_precision=PREC) * qk_scale  # (BLOCK_N, BLOCK_M), log2 domain
                pt = tl.math.exp2(qkt - lse2[None, :])
                r = offs_n[:, None] - (offs_m[None, :] + OFF)
                ok = (r <= RIGHT) & (r >= -LEFT) & row_ok[None, :]
                pt = tl.where(ok, pt, 0.0)
                do = tl.load(do_base + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                             mask=row_ok[:, None] & (offs_d[None, :] < D), other=0.0)  # (BLOCK_M, BLOCK_D)
                dv += tl.dot(pt.to(do.dtype), do, input_precision=PREC)
                delta = tl.load(DELTA + (b * H + h) * Lq + offs_m, mask=row_ok, other=0.0)
                dpt = tl.dot(v, tl.trans(do), input_precision=PREC)  # (BLOCK_N, BLOCK_M)
                dst = pt * (dpt - delta[None, :])
                dk += tl.dot(dst.to(qt.dtype), tl.trans(qt), input_precision=PREC)
        sm_scale = qk_scale / 1.4426950408889634
        tl.store(DK + b * skb + hk * skh + offs_n[:, None] * skn + offs_d[None, :] * skd,
                 (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_ok)
        tl.store(DV + b * svb + hk * svh + offs_n[:, None] * svn + offs_d[None, :] * svd,
                 dv.to(DV.dtype.element_ty), mask=kv_ok)

    @triton.jit
    def _attn_bwd_dq_kernel(Q, K, V, DO, LSE2, DELTA, DQ,
                            sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
                            H, G, Lq, Lk, OFF, LEFT, RIGHT, qk_scale,
                            D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                            PREC: tl.constexpr):
        """dQ for BLOCK_M query rows of one head. DO and DQ have Q's strides."""
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        hk = h // G
        m0 = pid_m * BLOCK_M
        m1 = tl.minimum(m0 + BLOCK_M, Lq)
        offs_m = m0 + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        row_ok = offs_m < Lq
        qmask = row_ok[:, None] & (offs_d[None, :] < D)
        q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd, mask=qmask, other=0.0)
        do = tl.load(DO + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd, mask=qmask, other=0.0)
        lse2 = tl.load(LSE2 + pid_bh * Lq + offs_m, mask=row_ok, other=float("inf"))
        delta = tl.load(DELTA + pid_bh * Lq + offs_m, mask=row_ok, other=0.0)
        k_base = K + b * skb + hk * skh
        v_base = V + b * svb + hk * svh
        dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        lo = tl.maximum(0, m0 + OFF - LEFT)
        lo = (lo // BLOCK_N) * BLOCK_N
        hi = tl.minimum(Lk, m1 - 1 + OFF + RIGHT + 1)
        for n0 in range(lo, hi, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            col_ok = offs_n < Lk
            kt = tl.load(k_base + offs_n[None, :] * skn + offs_d[:, None] * skd,
                         mask=col_ok[None, :] & (offs_d[:, None] < D), other=0.0)  # (BLOCK_D, BLOCK_N)
            vt = tl.load(v_base + offs_n[None, :] * svn + offs_d[:, None] * svd,
                         mask=col_ok[None, :] & (offs_d[:, None] < D), other=0.0)
            qk = tl.dot(q, kt, input_precision=PREC) * qk_scale
            p = tl.math.exp2(qk - lse2[:, None])
            r = offs_n[None, :] - (offs_m[:, None] + OFF)
            p = tl.where((r <= RIGHT) & (r >= -LEFT) & col_ok[None, :], p, 0.0)
            dp = tl.dot(do, vt, input_precision=PREC)  # (BLOCK_M, BLOCK_N)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(kt.dtype), tl.trans(kt), input_precision=PREC)
        sm_scale = qk_scale / 1.4426950408889634
        tl.store(DQ + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                 (dq * sm_scale).to(DQ.dtype.element_ty), mask=qmask)


def _band(mask: TilingMask) -> tuple[int, int]:
    left = _BIG if math.isinf(mask.left_bound) else int(mask.left_bound)
    right = _BIG if math.isinf(mask.right_bound) else int(mask.right_bound)
    return left, right


def _block_d(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


def _prec(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: TilingMask, scale: float,
                  tiling: TilingConfig, off: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel. q [b, h, i, d], k/v [b, hk, j, d] contiguous; ``off`` = key position of
    query 0 (default Lk - Lq). Returns (o, lse fp32)."""
    b, h, lq, d = q.shape
    hk, lk = k.shape[1], k.shape[2]
    o = torch.empty_like(q)
    lse = torch.empty(b, h, lq, dtype=torch.float32, device=q.device)
    left, right = _band(mask)
    bm, bn, bno = tiling.triton_block_m, tiling.triton_block_n, tiling.triton_block_n_outer
    grid = (triton.cdiv(lq, bm), b * h)
    _attn_fwd_kernel[grid](
        q, k, v, o, lse, *q.stride(), *k.stride(), *v.stride(), *o.stride(),
        h, h // hk, lq, lk, lk - lq if off is None else off, left, right, scale * LOG2E,
        D=d, BLOCK_D=_block_d(d), BLOCK_M=bm, BLOCK_N=bn, BLOCK_N_OUTER=bno, PREC=_prec(q.dtype),
        num_warps=tiling.triton_num_warps, num_stages=tiling.triton_num_stages)
    return o, lse


def attention_bwd(do, q, k, v, o, lse, dlse, mask: TilingMask, scale: float, tiling: TilingConfig,
                  off: int | None = None):
    """Launch the backward kernels. Returns (dq, dk, dv)."""
    b, h, lq, d = q.shape
    hk, lk = k.shape[1], k.shape[2]
    off = lk - lq if off is None else off
    do = do.contiguous()
    delta = (do.float() * o.float()).sum(-1)  # (b, h, i)
    if dlse is not None:
        delta = delta - dlse.float()
    lse2 = torch.where(torch.isinf(lse), torch.full_like(lse, math.inf), lse * LOG2E).contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    left, right = _band(mask)
    bm, bn = tiling.triton_bwd_block_m, tiling.triton_bwd_block_n
    common = dict(D=d, BLOCK_D=_block_d(d), PREC=_prec(q.dtype))
    nw = 4 if d <= 64 else 8
    _attn_bwd_dkdv_kernel[(triton.cdiv(lk, bn), b * hk)](
        q, k, v, do, lse2, delta, dk, dv, *q.stride(), *k.stride(), *v.stride(),
        h, hk, h // hk, lq, lk, off, left, right, scale * LOG2E,
        BLOCK_M=bm, BLOCK_N=bn, num_warps=nw, num_stages=tiling.triton_num_stages, **common)
    _attn_bwd_dq_kernel[(triton.cdiv(lq, bn), b * h)](
        q, k, v, do, lse2, delta, dq, *q.stride(), *k.stride(), *v.stride(),
        h, h // hk, lq, lk, off, left, right, scale * LOG2E,
        BLOCK_M=bn, BLOCK_N=bm, num_warps=nw, num_stages=tiling.triton_num_stages, **common)
    return dq, dk, dv


class _TritonAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, scale, tiling, off):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        o, lse = attention_fwd(q, k, v, mask, scale, tiling, off)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.mask, ctx.scale, ctx.tiling, ctx.off = mask, scale, tiling, off
        return o, lse

    @staticmethod
    def backward(ctx, do, dlse):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_bwd(do, q, k, v, o, lse, dlse, ctx.mask, ctx.scale, ctx.tiling, ctx.off)
        return dq, dk, dv, None, None, None, None


def triton_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: TilingMask, scale: float,
                     tiling: TilingConfig, off: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable Triton attention; returns (o, lse). Callers validate inputs (see ``attention``)."""
    if not HAS_TRITON:
        raise RuntimeError("triton_attention: triton is not installed")
    return _TritonAttention.apply(q, k, v, mask, scale, tiling, off)
