"""The CPU fast path of the ``"torch"`` backend: SDPA's CPU flash kernel per visible piece, merged by LSE.

The pure-torch tiled loop in :mod:`fastattention.functional` runs every score tile as separate
``baddbmm`` / ``exp`` / ``bmm`` passes (about 2x SDPA's time on a CPU). Here the same tiling-mask
geometry (FastAttention §3.2) decides *which* keys each query block visits, and each visible rectangle
("piece") runs in one call of ATen's fused CPU flash kernel
(``aten::_scaled_dot_product_flash_attention_for_cpu``, which also returns the LSE). The pieces of a
query block are merged exactly with :func:`~fastattention.functional.lse_merge` (§4.2, split-KV).

A piece is one of:

* ``full``: every query of the block sees every key of the piece (no mask);
* ``causal``: the band's upper edge crosses the piece at its top-left corner, so the kernel's own
  top-left ``is_causal`` is the mask (query ``r`` sees keys ``c <= r``);
* ``anti``: the band's lower (window) edge crosses a square piece at its top-left corner (``c >= r``);
  reversing queries and keys turns it into ``causal``;
* ``mask``: anything else (sequence edges, block-sparse layouts, dense masks): the kernel gets the
  piece's [rows, keys] additive mask, O(block^2) memory.

Query blocks are as tall as the band allows: a causal or full mask is one block (one or two kernel
calls). A window bounded on both sides first takes the leading queries whose window reaches back past
key 0 (the first ``W`` rows of a causal window): only the upper edge crosses them, so they are one
unmasked causal piece. The remaining queries use blocks of ``block_m`` rows, each one masked piece of
``W + block_m`` keys; the interior blocks share one mask template and run as *one* kernel call whose
batch is the blocks (overlapping no-copy ``as_strided`` views of K and V), so the work is
``Lq * (W + block_m)``, not ``Lq * Lk``. Every band mask piece is a top-left slice of a template cached
across calls (per diagonal offset), so a call builds no mask. At N = 16K, W = 1024 this is two kernel
calls, where the earlier plan made nine and built eight masks per call: on a busy 2-core machine every
small op is a parallel region costing ~7 ms, which put that plan at 0.73x causal SDPA, against 0.2x now.

The backward runs the kernel's backward per piece with the *merged* output and LSE: then
``P = exp(S - L)`` is the global softmax restricted to the piece, ``D = rowsum(dO * O)`` is the global
one, and the pieces' dQ, dK, dV add up to the exact gradient (FlashAttention-2, Alg. 2).

Einops legend: b batch, h query heads, hk KV heads, i query position, j key position, d / e head dims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from fastattention.functional import lse_merge
from fastattention.masks import FULL, SKIP, TilingMask

NEG_INF = float("-inf")


def _ops():
    fwd = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    return fwd, bwd


def supported(q: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the fast path can run: CPU, fp32/fp64, V's head dim equal to Q's (a kernel requirement),
    and a torch that has the CPU flash kernel."""
    fwd, bwd = _ops()
    return (q.device.type == "cpu" and q.dtype in (torch.float32, torch.float64) and v.shape[-1] == q.shape[-1]
            and fwd is not None and bwd is not None)


@dataclass(frozen=True)
class Piece:
    """Queries ``[q0, q1)`` x keys ``[k0, k1)`` and how the mask crosses them."""

    q0: int
    q1: int
    k0: int
    k1: int
    kind: str  # "full" | "causal" | "anti" | "mask"
    n: int = 1  # a run of n blocks: block i is the piece shifted by i * (q1 - q0) queries and keys

    def blocks(self):
        """The (q0, q1, k0, k1) rectangles of the run."""
        step = self.q1 - self.q0
        return [(self.q0 + i * step, self.q1 + i * step, self.k0 + i * step, self.k1 + i * step) for i in range(self.n)]


def _classify(mask: TilingMask, q0: int, q1: int, k0: int, k1: int, off: int) -> str | None:
    """The piece kind from the band geometry (None: nothing visible). Exact, whatever the cut points."""
    kind = mask.tile_kind(q0, q1, k0, k1, off)
    if kind == SKIP:
        return None
    if kind == FULL:
        return "full"
    bm, bn = q1 - q0, k1 - k0
    d = k0 - q0 - off  # key - query - off = d + c - r for row r, column c of the piece
    lo, hi = -mask.left_bound, mask.right_bound
    lower_uncut = d - (bm - 1) >= lo  # the window edge misses every element
    upper_uncut = d + (bn - 1) <= hi
    if d == hi and lower_uncut:  # r <= hi  <=>  c <= r
        return "causal"
    if d == lo and bm == bn and upper_uncut:  # r >= lo  <=>  c >= r
        return "anti"
    return "mask"


def _one_piece_per_block(mask: TilingMask) -> bool:
    """A window bounded on both sides: each query block is one masked piece (see the module docstring)."""
    return not math.isinf(mask.left_bound) and not math.isinf(mask.right_bound)


def plan(mask: TilingMask, lq: int, lk: int, off: int, *, block_m: int, block_n: int, dense: bool = False
         ) -> list[Piece]:
    """The pieces covering every visible (query, key) pair exactly once.

    Args:
        mask: the band (and layout) mask.
        lq, lk: query and key lengths; off: key position of query 0.
        block_m, block_n: tile sizes of the generic (tile-by-tile) plan.
        dense: a dense mask is given: every piece reads its tile of it (``mask`` pieces).

    Block-sparse layouts, dense masks and very narrow windows are planned tile by tile.
    """
    pieces: list[Piece] = []
    lo, hi = -mask.left_bound, mask.right_bound
    generic = dense or mask.layout is not None
    bm = block_m if generic or _one_piece_per_block(mask) else lq
    start = 0
    if not generic and _one_piece_per_block(mask):
        # the leading queries whose window reaches back past key 0 see only the upper edge: plan them as
        # one causal (or full + causal) piece, not as masked blocks (no mask, one kernel call)
        start = min(lq, max(0, int(mask.left_bound) - off + 1))
        if start > 0:
            pieces = plan(TilingMask(right=int(hi)), start, lk, off, block_m=block_m, block_n=block_n)
    for q0 in range(start, lq, bm):
        q1 = min(q0 + bm, lq)
        ks, ke = mask.kv_range(q0, q1, lk, off)
        if ks >= ke:
            continue
        if generic:
            cuts = list(range((ks // block_n) * block_n, ke, block_n)) + [ke]
        elif _one_piece_per_block(mask):
            cuts = [ks, ke]
        else:
            a = q0 + off
            cuts = [ks, ke] + [int(x) for x in (a + lo, a + lo + (q1 - q0), a + hi, a + hi + (q1 - q0))
                               if not math.isinf(x)]
        cuts = sorted({min(max(c, ks), ke) for c in cuts})
        run = None  # merge neighbouring full pieces into one kernel call
        for k0, k1 in zip(cuts[:-1], cuts[1:]):
            kind = _classify(mask, q0, q1, k0, k1, off)
            if kind is not None and mask.layout is not None:
                on = mask.layout_tile(q0, k0, q1 - q0, k1 - k0)
                if not (bool(on.any()) if isinstance(on, torch.Tensor) else on):
                    kind = None
                elif mask.layout_elements(q0, k0, q1 - q0, k1 - k0) is not None:
                    kind = "mask"
            if kind is not None and dense:
                kind = "mask"
            if kind == "full" and run is not None and run.k1 == k0:
                run = pieces[-1] = Piece(q0, q1, run.k0, k1, "full")
                continue
            if kind is not None:
                pieces.append(Piece(q0, q1, k0, k1, kind))
            run = pieces[-1] if kind == "full" else None
    return pieces if generic else _runs(pieces)


def _runs(pieces: list[Piece]) -> list[Piece]:
    """Fold the interior blocks of a sliding window (one piece each, same shape, shifted by one block)
    into one run, so that a single kernel call covers them all (the blocks become its batch)."""
    count: dict[int, int] = {}
    for p in pieces:
        count[p.q0] = count.get(p.q0, 0) + 1
    out: list[Piece] = []
    for p in pieces:
        if out and count[p.q0] == 1 and p.kind in ("full", "mask"):
            r = out[-1]
            s = (r.q1 - r.q0) * r.n
            if (count[r.q0] == 1 and r.kind == p.kind
                    and (p.q0, p.q1, p.k0, p.k1) == (r.q0 + s, r.q1 + s, r.k0 + s, r.k1 + s)):
                out[-1] = Piece(r.q0, r.q1, r.k0, r.k1, r.kind, r.n + 1)
                continue
        out.append(p)
    return out


_CACHED_MASK = 1 << 21  # templates up to 8 MB (fp32) are kept across calls; 32 of them at most


@lru_cache(maxsize=32)
def _band_template(left: float, right: float, d: int, bm: int, bn: int, dtype: torch.dtype, device: str
                   ) -> torch.Tensor:
    """The additive band mask [1, 1, bm, bn] (0 where ``-left <= d + c - r <= right``, else -inf), cached
    across calls: on a busy CPU every small op that builds it costs a parallel region (~7 ms each measured
    under load), more than the rest of a window call's bookkeeping. Read-only: never modified in place."""
    r = torch.arange(bm, device=device)[:, None]
    c = torch.arange(bn, device=device)[None, :]
    x = d + c - r
    keep = (x >= -left) & (x <= right)
    return torch.full((bm, bn), NEG_INF, dtype=dtype, device=device).masked_fill_(keep, 0.0)[None, None]


def _piece_mask(mask: TilingMask, dense: torch.Tensor | None, p: Piece, off: int, dtype: torch.dtype,
                device: torch.device, cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Additive mask [b|1, h|1, rows, keys] (0 / -inf plus a float dense mask) and its empty rows (None:
    no row is empty).

    A band mask depends only on the piece's diagonal offset ``k0 - q0 - off``: every piece with the same
    offset is a top-left slice of one cached template (the tiling-mask of §3.2), so the interior blocks,
    the last (shorter) block and the blocks cut by the key end of a sliding window share one template.
    """
    bm, bn = p.q1 - p.q0, p.k1 - p.k0
    if cache is not None and dense is None and mask.layout is None:
        d = p.k0 - p.q0 - off
        t = cache.get(d)
        if t is None or t.shape[-2] < bm or t.shape[-1] < bn:
            build = _band_template if bm * bn <= _CACHED_MASK else _band_template.__wrapped__  # bound the cache
            t = cache[d] = build(mask.left_bound, mask.right_bound, d, bm, bn, dtype, str(device))
        m = t[..., :bm, :bn]
        m = m if m.is_contiguous() else m.contiguous()
        # row r sees columns c with lo <= d + c - r <= hi, 0 <= c < bn: rows [r0, r1) see at least one
        r0 = max(0.0, d - mask.right_bound)
        r1 = min(float(bm), bn + mask.left_bound + d)
        if r0 <= 0 and r1 >= bm:
            return m, None
        r = torch.arange(bm, device=device)
        return m, ((r < r0) | (r >= r1))[None, None]
    keep = torch.ones(1, 1, bm, bn, dtype=torch.bool, device=device)
    band = mask.tile_mask(p.q0, p.q1, p.k0, p.k1, off, device)
    if band is not None:
        keep = keep & band
    lay = mask.layout_elements(p.q0, p.k0, bm, bn)
    if lay is not None:
        keep = keep & lay.to(device)[None] if lay.dim() == 3 else keep & lay.to(device)
    add = torch.zeros((), dtype=dtype, device=device)
    if dense is not None:
        tile = dense[..., p.q0:p.q1, p.k0:p.k1]
        if dense.dtype == torch.bool:
            keep = keep & tile
        else:
            add = tile.to(dtype)
    m = torch.where(keep, add, torch.full((), NEG_INF, dtype=dtype, device=device))
    return m, torch.isneginf(m).all(-1)


def _blocks(t: torch.Tensor, bi: int, start: int, n: int, step: int, length: int) -> torch.Tensor:
    """A no-copy view [n, heads, length, ...] of ``t[bi, :, start + i * step : ... + length]`` for i < n
    (windows of neighbouring blocks overlap when ``length > step``)."""
    x = t[bi]
    sl = x.stride(1)
    return x.as_strided((n, x.shape[0], length, *x.shape[2:]), (step * sl, x.stride(0), sl, *x.stride()[2:]),
                        x.storage_offset() + start * sl)


def _unblock(t: torch.Tensor) -> torch.Tensor:
    """[n, heads, bm, ...] -> [heads, n * bm, ...]."""
    return t.transpose(0, 1).flatten(1, 2)


def _run_fwd_batched(q, k, v, p: Piece, scale: float, mask: TilingMask, off: int, out, lse, cache: dict) -> None:
    """A run of n blocks as one kernel call whose batch is the blocks (per batch entry)."""
    fwd, _ = _ops()
    bm, width = p.q1 - p.q0, p.k1 - p.k0
    m, empty = _piece_mask(mask, None, p, off, q.dtype, q.device, cache) if p.kind == "mask" else (None, None)
    for bi in range(q.shape[0]):
        o, l = fwd(_blocks(q, bi, p.q0, p.n, bm, bm), _blocks(k, bi, p.k0, p.n, bm, width),
                   _blocks(v, bi, p.k0, p.n, bm, width), 0.0, False, attn_mask=m, scale=scale)
        if empty is not None:
            o, l = o.masked_fill(empty[..., None], 0.0), l.masked_fill(empty, NEG_INF)
        out[bi, :, p.q0:p.q0 + p.n * bm] = _unblock(o)
        lse[bi, :, p.q0:p.q0 + p.n * bm] = _unblock(l)


def _run_bwd_batched(do, q, k, v, o, lse, p: Piece, scale: float, mask: TilingMask, off: int, dq, dk, dv,
                     cache: dict) -> None:
    _, bwd = _ops()
    bm, width = p.q1 - p.q0, p.k1 - p.k0
    m = _piece_mask(mask, None, p, off, q.dtype, q.device, cache)[0] if p.kind == "mask" else None
    for bi in range(q.shape[0]):
        rows = [_blocks(t, bi, p.q0, p.n, bm, bm) for t in (do, q)]
        keys = [_blocks(t, bi, p.k0, p.n, bm, width) for t in (k, v)]
        gq, gk, gv = bwd(*rows, *keys, _blocks(o, bi, p.q0, p.n, bm, bm), _blocks(lse, bi, p.q0, p.n, bm, bm),
                         0.0, False, attn_mask=m, scale=scale)
        dq[bi, :, p.q0:p.q0 + p.n * bm] += _unblock(gq)
        for c0 in range(0, width, bm):  # the key windows overlap: add them back one block-wide slab at a time
            c1 = min(c0 + bm, width)
            _blocks(dk, bi, p.k0 + c0, p.n, bm, c1 - c0).add_(gk[:, :, c0:c1])
            _blocks(dv, bi, p.k0 + c0, p.n, bm, c1 - c0).add_(gv[:, :, c0:c1])


def _flip(t: torch.Tensor) -> torch.Tensor:
    return t.flip(-2)


def _run_fwd(q, k, v, p: Piece, scale: float, mask: TilingMask, dense, off: int, cache: dict):
    fwd, _ = _ops()
    qs, ks, vs = q[:, :, p.q0:p.q1], k[:, :, p.k0:p.k1], v[:, :, p.k0:p.k1]
    if p.kind == "full":
        return fwd(qs, ks, vs, 0.0, False, scale=scale)
    if p.kind == "causal":
        return fwd(qs, ks, vs, 0.0, True, scale=scale)
    if p.kind == "anti":
        o, lse = fwd(_flip(qs), _flip(ks), _flip(vs), 0.0, True, scale=scale)
        return _flip(o), lse.flip(-1)
    m, empty = _piece_mask(mask, dense, p, off, q.dtype, q.device, cache)
    o, lse = fwd(qs, ks, vs, 0.0, False, attn_mask=m, scale=scale)
    if empty is None:
        return o, lse
    return o.masked_fill(empty[..., None], 0.0), lse.masked_fill(empty, NEG_INF)


def _whole(pieces: list[Piece], lq: int, lk: int) -> bool:
    """A single piece over all queries and all keys (dense causal or full attention): one kernel call."""
    return len(pieces) == 1 and pieces[0].n == 1 and (pieces[0].q0, pieces[0].q1, pieces[0].k0, pieces[0].k1) == (
        0, lq, 0, lk)


def _covers(pieces: list[Piece], lq: int) -> bool:
    """Whether the pieces' query blocks cover every query row (a row without visible keys has no piece)."""
    end = 0
    for q0, q1 in sorted({(p.q0, p.q0 + p.n * (p.q1 - p.q0)) for p in pieces}):
        if q0 > end:
            return False
        end = max(end, q1)
    return end >= lq


def flash_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pieces: list[Piece], *, scale: float,
                  mask: TilingMask, dense: torch.Tensor | None, off: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over ``pieces``: one kernel call each, merged per query block by LSE.

    Returns:
        (out [b, h, i, e] in q's dtype, lse [b, h, i]: fp32, fp64 for fp64 inputs; -inf on empty rows).
    """
    b, h, lq, _ = q.shape
    e = v.shape[-1]
    if _whole(pieces, lq, k.shape[2]):  # one call covers everything: its output is the answer, no copy
        return _run_fwd(q, k, v, pieces[0], scale, mask, dense, off, {})
    if _covers(pieces, lq):  # every row is written below: no fill
        out = torch.empty(b, h, lq, e, dtype=q.dtype, device=q.device)
        lse = torch.empty(b, h, lq, dtype=q.dtype, device=q.device)
    else:
        out = torch.zeros(b, h, lq, e, dtype=q.dtype, device=q.device)
        lse = torch.full((b, h, lq), NEG_INF, dtype=q.dtype, device=q.device)
    block = None  # (q0, q1, o, l) of the query block being merged
    cache: dict = {}
    for p in pieces + [None]:
        if block is not None and (p is None or (p.q0, p.q1) != block[:2]):
            q0, q1, o, l = block
            out[:, :, q0:q1], lse[:, :, q0:q1] = o, l
            block = None
        if p is None:
            break
        if p.n > 1:
            _run_fwd_batched(q, k, v, p, scale, mask, off, out, lse, cache)
            continue
        o, l = _run_fwd(q, k, v, p, scale, mask, dense, off, cache)
        block = (p.q0, p.q1, o, l) if block is None else (p.q0, p.q1, *lse_merge(block[2], block[3], o, l))
    return out, lse


def flash_backward(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor,
                   lse: torch.Tensor, pieces: list[Piece], *, scale: float, mask: TilingMask,
                   dense: torch.Tensor | None, off: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`flash_forward`: the kernel's backward per piece with the merged O and LSE."""
    _, bwd = _ops()
    # an empty row has lse = -inf; +inf makes P = exp(S - inf) = 0 there
    lse = lse.masked_fill(torch.isneginf(lse), math.inf)
    whole = _whole(pieces, q.shape[2], k.shape[2])
    if not whole:
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    cache: dict = {}
    for p in pieces:
        if p.n > 1:
            _run_bwd_batched(do, q, k, v, o, lse, p, scale, mask, off, dq, dk, dv, cache)
            continue
        r, c = slice(p.q0, p.q1), slice(p.k0, p.k1)
        args = [do[:, :, r], q[:, :, r], k[:, :, c], v[:, :, c], o[:, :, r], lse[:, :, r]]
        if p.kind == "anti":
            args = [_flip(t) for t in args[:5]] + [args[5].flip(-1)]
            gq, gk, gv = (_flip(t) for t in bwd(*args, 0.0, True, scale=scale))
        elif p.kind == "mask":
            m, _ = _piece_mask(mask, dense, p, off, q.dtype, q.device, cache)
            gq, gk, gv = bwd(*args, 0.0, False, attn_mask=m, scale=scale)
        else:
            gq, gk, gv = bwd(*args, 0.0, p.kind == "causal", scale=scale)
        if whole:  # the one piece's gradients are the gradients
            return gq, gk, gv
        dq[:, :, r] += gq
        dk[:, :, c] += gk
        dv[:, :, c] += gv
    return dq, dk, dv
