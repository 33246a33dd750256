"""Pure-torch attention math: the naive reference, the LSE merge, and the tiled (FlashAttention-2) forward
and backward that the ``"torch"`` backend runs.

Einops legend: b batch, h query heads, g = h / hk query heads per KV head (GQA), hk KV heads,
i query position (Lq), j key position (Lk), d head dim, e value head dim.

The tiled path follows FlashAttention-2 (Dao, 2023) with FastAttention's two-level tiling (§3.1):
for each query block, for each first-level KV block, one score GEMM ``S = Q K^T`` (the Cube stage),
then for each second-level sub-block the online-softmax update (the Vector stage) and its ``P V``:

    m' = max(m, rowmax S);  P = exp(S - m');  a = exp(m - m')
    l  = a l + rowsum P;    O = a O + P V;     m = m'
    finally O /= l and LSE = m + log l.

Rows whose keys are all masked keep ``m = -inf``; they get O = 0 and LSE = -inf, never NaN.
GQA is handled without repeating K/V: the g query heads of a KV head are stacked along the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fastattention.config import DEFAULT_TILING, TilingConfig
from fastattention.masks import FULL, SKIP, TilingMask

NEG_INF = float("-inf")


# --------------------------------------------------------------------------------------- reference
def attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: TilingMask | None = None, *,
    scale: float | None = None, dense_mask: torch.Tensor | None = None, upcast: bool = True, off: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Naive softmax attention (materialises the [Lq, Lk] scores; for tests only).

    Args:
        q: [b, h, i, d]; k: [b, hk, j, d]; v: [b, hk, j, e] with h a multiple of hk.
        mask: causal / window / block-sparse mask (bottom-right aligned).
        scale: softmax scale, default 1 / sqrt(d).
        dense_mask: optional bool (True = keep) or additive float mask broadcastable to [b, h, i, j].
        upcast: compute in fp32 (or fp64 if the inputs are fp64).
        off: key position of query 0 (default ``Lk - Lq``, bottom-right).

    Returns:
        (out [b, h, i, e] in q's dtype, lse [b, h, i] fp32/fp64).
    """
    b, h, lq, d = q.shape
    hk, lk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    dt = torch.float64 if q.dtype == torch.float64 else (torch.float32 if upcast else q.dtype)
    kr = k.to(dt).repeat_interleave(h // hk, dim=1)  # (b, h, j, d)
    vr = v.to(dt).repeat_interleave(h // hk, dim=1)
    s = (q.to(dt) @ kr.transpose(-1, -2)) * scale  # (b, h, i, j)
    if mask is not None:
        s = s.masked_fill(~mask.dense(lq, lk, q.device, off=off), NEG_INF)
    if dense_mask is not None:
        s = s.masked_fill(~dense_mask, NEG_INF) if dense_mask.dtype == torch.bool else s + dense_mask.to(dt)
    lse = torch.logsumexp(s, dim=-1)  # (b, h, i); -inf for fully masked rows
    p = torch.exp(s - torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)[..., None])
    p = torch.where(torch.isinf(lse)[..., None], torch.zeros_like(p), p)
    return (p @ vr).to(q.dtype), lse


def lse_merge(o1: torch.Tensor, lse1: torch.Tensor, o2: torch.Tensor, lse2: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly merge two attention results over disjoint key sets (FastAttention §4.2, split-KV).

    ``L = log(e^L1 + e^L2)``, ``O = e^(L1 - L) O1 + e^(L2 - L) O2``. Rows empty in both parts stay O = 0,
    L = -inf.

    Args:
        o1, o2: [..., i, e] normalised partial outputs; lse1, lse2: [..., i].
    """
    dt = torch.float64 if torch.float64 in (o1.dtype, lse1.dtype) else torch.float32
    lse1, lse2 = lse1.to(dt), lse2.to(dt)
    lse = torch.logaddexp(lse1, lse2)
    empty = torch.isinf(lse)[..., None]
    safe = torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)
    w1 = torch.exp(lse1 - safe)[..., None].masked_fill(empty, 0.0)
    w2 = torch.exp(lse2 - safe)[..., None].masked_fill(empty, 0.0)
    return (w1 * o1.to(dt) + w2 * o2.to(dt)).to(o1.dtype), lse


# ------------------------------------------------------------------------------------- tiled torch
@dataclass
class TileStats:
    """Counters of the tiled loops (FastAttention §3.1: outer iterations are the Cube/Vector sync points)."""

    outer: int = 0  # first-level KV blocks visited (score GEMMs)
    inner: int = 0  # second-level sub-blocks (softmax updates)
    skipped: int = 0  # tiles skipped by the mask
    partial: int = 0  # tiles that needed a mask window
    mask_bytes: int = 0  # largest mask tile touched


def _tile_mask(mask: TilingMask, dense: torch.Tensor | None, q0: int, q1: int, k0: int, k1: int, off: int,
               hk: int, g: int, device: torch.device, stats: TileStats | None, add: torch.Tensor | None = None):
    """Boolean keep-mask for a tile, broadcastable to [b, hk, g, bm, bn], or None (all visible).

    Also returns an additive float tile from a float dense mask (or None).
    """
    keep = None
    if mask.tile_kind(q0, q1, k0, k1, off) != FULL:
        keep = mask.tile_mask(q0, q1, k0, k1, off, device)
    lay = mask.layout_elements(q0, k0, q1 - q0, k1 - k0)
    if lay is not None:
        lay = lay.to(device)
        if lay.dim() == 3:
            lay = lay.unflatten(0, (hk, g))
        keep = lay if keep is None else keep & lay
    addt = None
    if dense is not None:
        dt = dense[..., q0:q1, k0:k1]  # (b|1, h|1, bm, bn)
        if dt.shape[1] != 1:
            dt = dt.unflatten(1, (hk, g))
        else:
            dt = dt.unsqueeze(1)
        if dense.dtype == torch.bool:
            keep = dt if keep is None else keep & dt
        else:
            addt = dt
    if stats is not None and keep is not None:
        stats.partial += 1
        stats.mask_bytes = max(stats.mask_bytes, keep.numel() * keep.element_size())
    return keep, addt


def _layout_skip(mask: TilingMask, q0: int, k0: int, bm: int, bn: int) -> bool:
    on = mask.layout_tile(q0, k0, bm, bn)
    return not (bool(on.any()) if isinstance(on, torch.Tensor) else on)


def _tiles(mask: TilingMask, q0: int, q1: int, lk: int, off: int, block_n: int):
    """The first-level KV blocks [k0, k1) a query block must visit, with their kind."""
    ks, ke = mask.kv_range(q0, q1, lk, off)
    for k0 in range((ks // block_n) * block_n, ke, block_n):
        k1 = min(k0 + block_n, lk)
        kind = mask.tile_kind(q0, q1, k0, k1, off)
        if kind == SKIP or _layout_skip(mask, q0, k0, q1 - q0, k1 - k0):
            yield k0, k1, SKIP
        else:
            yield k0, k1, kind


def tiled_attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: TilingMask, *, scale: float,
    dense_mask: torch.Tensor | None = None, tiling: TilingConfig = DEFAULT_TILING, off: int | None = None,
    stats: TileStats | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-level tiled online-softmax attention forward in torch (O(N) extra memory).

    Args:
        q: [b, h, i, d]; k: [b, hk, j, d]; v: [b, hk, j, e].
        mask: the (bottom-right aligned) TilingMask.
        scale: softmax scale.
        dense_mask: optional dense mask (bool keep or additive float), sliced per tile.
        tiling: block sizes.
        off: diagonal offset (key position of query 0); default ``Lk - Lq``. A KV chunk starting at key
            ``c`` of a longer cache uses ``Lk_total - Lq - c``.
        stats: optional counters filled in place.

    Returns:
        (out [b, h, i, e] in q's dtype, lse [b, h, i] fp32, fp64 for fp64 inputs).
    """
    b, h, lq, d = q.shape
    hk, lk, e = k.shape[1], k.shape[2], v.shape[-1]
    g = h // hk
    off = lk - lq if off is None else off
    bm, bn, bi = tiling.block_m, tiling.block_n, tiling.inner
    acc_dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    out = torch.empty(b, hk, g, lq, e, dtype=q.dtype, device=q.device)
    lse = torch.empty(b, hk, g, lq, dtype=acc_dt, device=q.device)
    qg = q.view(b, hk, g, lq, d)
    # V with a column of ones appended: P @ [V, 1] yields the row sums l in the same GEMM, and the
    # rescale of the accumulator rescales l with it (one fewer pass over each score tile)
    v1 = torch.cat([v.to(acc_dt), torch.ones(b, hk, lk, 1, dtype=acc_dt, device=v.device)], dim=-1)
    for q0 in range(0, lq, bm):
        q1 = min(q0 + bm, lq)
        rows = q1 - q0
        qb = (qg[:, :, :, q0:q1].to(acc_dt) * scale).reshape(b, hk, g * rows, d)  # (b, hk, g*bm, d)
        m = torch.full((b, hk, g * rows, 1), NEG_INF, dtype=acc_dt, device=q.device)
        acc = torch.zeros(b, hk, g * rows, e + 1, dtype=acc_dt, device=q.device)  # [O * l, l]
        acc3 = acc.view(b * hk, g * rows, e + 1)
        for k0, k1, kind in _tiles(mask, q0, q1, lk, off, bn):
            if kind == SKIP:
                if stats is not None:
                    stats.skipped += 1
                continue
            # ---- first level: one score GEMM for the whole KV block (the "Cube" stage)
            s = qb @ k[:, :, k0:k1].to(acc_dt).transpose(-1, -2)  # (b, hk, g*bm, bn)
            keep, addt = _tile_mask(mask, dense_mask, q0, q1, k0, k1, off, hk, g, q.device, stats)
            masked = keep is not None or addt is not None
            if masked:
                s5 = s.view(b, hk, g, rows, k1 - k0)
                if addt is not None:
                    s5.add_(addt)
                if keep is not None:
                    s5.masked_fill_(~keep, NEG_INF)
            if stats is not None:
                stats.outer += 1
            # ---- second level: online-softmax update per sub-block (the "Vector" stage)
            for c0 in range(0, k1 - k0, bi):
                c1 = min(c0 + bi, k1 - k0)
                sc = s[..., c0:c1] if (c0, c1) != (0, k1 - k0) else s
                m_new = torch.maximum(m, sc.amax(-1, keepdim=True))
                m_safe = m_new.masked_fill(m_new == NEG_INF, 0.0) if masked else m_new
                p = sc.sub_(m_safe).exp_()  # in place: s is not needed after this sub-block
                acc.mul_((m - m_safe).exp_())  # alpha = exp(m - m'), rescales O*l and l together
                acc3.baddbmm_(p.flatten(0, 1), v1[:, :, k0 + c0:k0 + c1].flatten(0, 1))  # O += P V in place
                m = m_new
                if stats is not None:
                    stats.inner += 1
        l = acc[..., e:]
        empty = l == 0
        out[:, :, :, q0:q1] = (acc[..., :e] / l.masked_fill(empty, 1.0)).view(b, hk, g, rows, e).to(q.dtype)
        lse_b = (m + l.log()).masked_fill(empty, NEG_INF)
        lse[:, :, :, q0:q1] = lse_b.view(b, hk, g, rows)
    return out.view(b, h, lq, e), lse.view(b, h, lq)


def tiled_attention_backward(
    do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
    mask: TilingMask, *, scale: float, dense_mask: torch.Tensor | None = None, dlse: torch.Tensor | None = None,
    tiling: TilingConfig = DEFAULT_TILING, off: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FlashAttention-2 backward in torch, recomputing P per tile from the saved LSE.

    ``D_i = rowsum(dO_i * O_i) - dLSE_i``; per tile: ``P = exp(S - L)``, ``dV += P^T dO``,
    ``dP = dO V^T``, ``dS = P (dP - D)``, ``dQ += scale dS K``, ``dK += scale dS^T Q``.

    Returns:
        (dq, dk, dv) in the input dtypes. dK / dV of a KV head sum over its g query heads.
    """
    b, h, lq, d = q.shape
    hk, lk, e = k.shape[1], k.shape[2], v.shape[-1]
    g = h // hk
    off = lk - lq if off is None else off
    bm, bn = tiling.block_m, tiling.block_n
    acc_dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    delta = (do.to(acc_dt) * o.to(acc_dt)).sum(-1)  # (b, h, i)
    if dlse is not None:
        delta = delta - dlse.to(acc_dt)
    # an empty row has lse = -inf; +inf makes P = exp(S - inf) = 0 there
    lse_safe = lse.to(acc_dt).masked_fill(torch.isinf(lse), math.inf)
    dq = torch.zeros(b, hk, g, lq, d, dtype=acc_dt, device=q.device)
    dk = torch.zeros(b, hk, lk, d, dtype=acc_dt, device=q.device)
    dv = torch.zeros(b, hk, lk, e, dtype=acc_dt, device=q.device)
    qg, dog = q.view(b, hk, g, lq, d), do.view(b, hk, g, lq, e)
    lg, dg = lse_safe.view(b, hk, g, lq), delta.view(b, hk, g, lq)
    for q0 in range(0, lq, bm):
        q1 = min(q0 + bm, lq)
        rows = q1 - q0
        qb = qg[:, :, :, q0:q1].to(acc_dt).reshape(b, hk, g * rows, d)
        dob = dog[:, :, :, q0:q1].to(acc_dt).reshape(b, hk, g * rows, e)
        lb = lg[:, :, :, q0:q1].reshape(b, hk, g * rows, 1)
        db = dg[:, :, :, q0:q1].reshape(b, hk, g * rows, 1)
        dqb = torch.zeros_like(qb)
        for k0, k1, kind in _tiles(mask, q0, q1, lk, off, bn):
            if kind == SKIP:
                continue
            kb, vb = k[:, :, k0:k1].to(acc_dt), v[:, :, k0:k1].to(acc_dt)
            s = (qb @ kb.transpose(-1, -2)).mul_(scale)  # (b, hk, g*bm, bn)
            keep, addt = _tile_mask(mask, dense_mask, q0, q1, k0, k1, off, hk, g, q.device, None)
            if keep is not None or addt is not None:
                s5 = s.view(b, hk, g, rows, k1 - k0)
                if addt is not None:
                    s5.add_(addt)
                if keep is not None:
                    s5.masked_fill_(~keep, NEG_INF)
            p = s.sub_(lb).exp_()  # (b, hk, g*bm, bn)
            dv[:, :, k0:k1] += p.transpose(-1, -2) @ dob  # sums the g heads of the group
            dp = dob @ vb.transpose(-1, -2)
            ds = p.mul_(dp.sub_(db))  # dS = P * (dP - D)
            dqb += ds @ kb
            dk[:, :, k0:k1] += ds.transpose(-1, -2) @ qb
        dq[:, :, :, q0:q1] = dqb.view(b, hk, g, rows, d)
    return ((dq * scale).view(b, h, lq, d).to(q.dtype), (dk * scale).to(k.dtype), dv.to(v.dtype))
