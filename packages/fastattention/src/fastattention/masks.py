"""Tiling-mask: attention masks that never materialise an N x N tensor (FastAttention §3.2).

A causal or sliding-window mask depends only on the diagonal offset ``r = key_pos - query_pos``:
key ``j`` is visible from query ``i`` iff ``-left <= r <= right``. Every tile of the score matrix is
therefore one of three kinds:

* **skip**: the band misses the tile entirely (no matmul at all);
* **full**: the tile lies inside the band (no mask needed);
* **partial**: a band boundary crosses the tile. Its [bm, bn] boolean mask is a *window* into one small
  lower-triangular template of size (bm + bn)^2, read at the offset of the tile (the paper builds one
  (2B)x(2B) template instead of the S x S mask: at S = 256K an fp16 mask is 128 GiB, the template 128 KiB).

Positions are aligned at the bottom right, as in KV-cache decoding: with ``Lq`` queries and ``Lk`` keys,
query ``i`` sits at absolute position ``i + (Lk - Lq)``. Block-sparse masks are given per tile as a
boolean layout ``[n_q_blocks, n_k_blocks]`` (optionally per head), so their memory is (N / B)^2 bits,
independent of the tile contents.

Einops legend: b batch, h heads, i query position, j key position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

SKIP, FULL, PARTIAL = 0, 1, 2


@lru_cache(maxsize=64)
def _template(size: int, device: str) -> torch.Tensor:
    """Lower-triangular boolean template T[a, b] = (b <= a), shape [size, size]."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril_()


def _below(e: int, bm: int, bn: int, device: torch.device) -> torch.Tensor | None:
    """M[i, j] = (e + j - i <= 0) for a [bm, bn] tile as a view into the template, or None when all true.

    Callers only pass ``e`` for which the tile is partial or full; an all-false tile is a caller bug.
    """
    if e + bn - 1 <= 0:
        return None
    if e - (bm - 1) > 0:
        raise AssertionError("an all-masked tile must be skipped, not sliced")
    s = max(0, -e)
    t = _template(bm + bn, str(device))
    return t[s:s + bm, s + e:s + e + bn]


@dataclass(frozen=True)
class TilingMask:
    """A causal / sliding-window / block-sparse mask evaluated per tile.

    Use the constructors :meth:`causal`, :meth:`sliding_window` and :meth:`block_sparse` (they compose
    with :meth:`__and__`). Memory: one (bm + bn)^2 boolean template per tile shape, plus the block layout
    for block-sparse masks; never O(Lq * Lk).

    Args:
        is_causal: key position <= query position (bottom-right aligned).
        left: a query sees keys at most ``left`` positions before it (None: unbounded).
        right: a query sees keys at most ``right`` positions after it (None: unbounded; 0 if causal).
        layout: optional boolean block layout ``[nqb, nkb]`` or ``[H, nqb, nkb]`` (True = compute the tile).
        layout_block: ``(block_q, block_k)`` the layout is given in.

    Paper: FastAttention §3.2 (tiling-mask).

    Example:
        >>> m = TilingMask.sliding_window(128)
        >>> m.tile_kind(0, 64, 512, 576, 0)  # far outside the window
        0
    """

    is_causal: bool = False
    left: int | None = None
    right: int | None = None
    layout: torch.Tensor | None = None
    layout_block: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in ("left", "right"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"TilingMask.{name}: expected None or an int >= 0, got {v!r}")
        if (self.layout is None) != (self.layout_block is None):
            raise ValueError("TilingMask: layout and layout_block must be given together, "
                             f"got layout={'set' if self.layout is not None else None}, layout_block={self.layout_block}")
        if self.layout is not None:
            if self.layout.dtype != torch.bool or self.layout.dim() not in (2, 3):
                raise ValueError(f"TilingMask.layout: expected a bool tensor [nqb, nkb] or [H, nqb, nkb], got "
                                 f"{self.layout.dtype} with shape {tuple(self.layout.shape)}")
            bq, bk = self.layout_block
            if bq < 1 or bk < 1:
                raise ValueError(f"TilingMask.layout_block: expected positive sizes, got {self.layout_block}")

    # ----------------------------------------------------------------------------------- constructors
    @classmethod
    def causal(cls) -> TilingMask:
        """Causal mask, aligned at the bottom right (query ``i`` sees keys ``<= i + Lk - Lq``)."""
        return cls(is_causal=True)

    @classmethod
    def sliding_window(cls, window: int | tuple[int, int], causal: bool = True) -> TilingMask:
        """Sliding window.

        Args:
            window: an int ``w``: each query sees the ``w`` most recent keys including its own
                position (``left = w - 1``; and ``right = w - 1`` when not causal); or a pair
                ``(left, right)`` as in flash-attn's ``window_size``.
            causal: also forbid keys after the query (``right = 0``).
        """
        left, right = _window_pair(window, causal)
        return cls(is_causal=causal, left=left, right=right)

    @classmethod
    def block_sparse(cls, layout: torch.Tensor, block: int | tuple[int, int], causal: bool = False) -> TilingMask:
        """Block-sparse mask: ``layout[qb, kb]`` (or ``[h, qb, kb]``) says whether tile (qb, kb) is computed."""
        block = (block, block) if isinstance(block, int) else tuple(block)
        return cls(is_causal=causal, layout=layout.to(torch.bool), layout_block=block)

    def __and__(self, other: TilingMask) -> TilingMask:
        if self.layout is not None and other.layout is not None:
            raise ValueError("TilingMask: cannot intersect two block-sparse masks")
        layout = self.layout if self.layout is not None else other.layout
        lb = self.layout_block if self.layout is not None else other.layout_block
        return TilingMask(is_causal=self.is_causal or other.is_causal, left=_min(self.left, other.left),
                          right=_min(self.right, other.right), layout=layout, layout_block=lb)

    # ------------------------------------------------------------------------------------ geometry
    @property
    def right_bound(self) -> float:
        r = math.inf if self.right is None else self.right
        return min(r, 0) if self.is_causal else r

    @property
    def left_bound(self) -> float:
        return math.inf if self.left is None else self.left

    @property
    def is_band_free(self) -> bool:
        """True when the mask has no causal/window part (only a layout, or nothing)."""
        return math.isinf(self.right_bound) and math.isinf(self.left_bound)

    @property
    def layout_per_head(self) -> bool:
        return self.layout is not None and self.layout.dim() == 3

    def kv_range(self, q0: int, q1: int, lk: int, off: int) -> tuple[int, int]:
        """Keys ``[k0, k1)`` that any query in ``[q0, q1)`` may see (``off = Lk - Lq`` plus any chunk shift)."""
        k0, k1 = 0, lk
        if not math.isinf(self.right_bound):
            k1 = min(lk, q1 - 1 + off + int(self.right_bound) + 1)
        if not math.isinf(self.left_bound):
            k0 = max(0, q0 + off - int(self.left_bound))
        return k0, max(k0, k1)

    def tile_kind(self, q0: int, q1: int, k0: int, k1: int, off: int) -> int:
        """SKIP, FULL or PARTIAL for the band part of the mask (the layout is checked separately)."""
        # r = key - (query + off) ranges over [k0 - (q1 - 1) - off, (k1 - 1) - q0 - off] in this tile.
        rmin, rmax = k0 - (q1 - 1) - off, (k1 - 1) - q0 - off
        lo, hi = -self.left_bound, self.right_bound
        if rmin > hi or rmax < lo:
            return SKIP
        if rmin >= lo and rmax <= hi:
            return FULL
        return PARTIAL

    def tile_mask(self, q0: int, q1: int, k0: int, k1: int, off: int, device: torch.device) -> torch.Tensor | None:
        """The [q1 - q0, k1 - k0] boolean mask of a tile (True = visible), or None if fully visible.

        Partial tiles are views into the cached triangular template; at most two (the two band edges)
        are combined, so the memory is O(bm * bn) whatever the sequence length.
        """
        bm, bn = q1 - q0, k1 - k0
        d = k0 - q0 - off  # r = d + j - i
        out = None
        if not math.isinf(self.right_bound):  # r <= right  <=>  (d - right) + j - i <= 0
            out = _below(d - int(self.right_bound), bm, bn, device)
        if not math.isinf(self.left_bound):  # r >= -left  <=>  (-left - d) + i - j <= 0 (transposed)
            m = _below(-int(self.left_bound) - d, bn, bm, device)
            if m is not None:
                m = m.t()
                out = m if out is None else out & m
        return out

    def layout_tile(self, q0: int, k0: int, bm: int, bn: int) -> torch.Tensor | bool:
        """Whether the layout allows a [bm, bn] tile at (q0, k0): a bool, or a per-head bool vector.

        A tile of the backend may straddle several layout blocks; it is computed if any of them is on,
        and then masked element-wise by :meth:`layout_elements`.
        """
        if self.layout is None:
            return True
        bq, bk = self.layout_block
        blk = self.layout[..., q0 // bq:(q0 + bm - 1) // bq + 1, k0 // bk:(k0 + bn - 1) // bk + 1]
        return blk.flatten(-2).any(-1) if self.layout_per_head else bool(blk.any())

    def layout_elements(self, q0: int, k0: int, bm: int, bn: int) -> torch.Tensor | None:
        """Element mask of the layout over a tile ([bm, bn] or [H, bm|1, bn|1]); None when it is all on."""
        if self.layout is None:
            return None
        bq, bk = self.layout_block
        if q0 // bq == (q0 + bm - 1) // bq and k0 // bk == (k0 + bn - 1) // bk:
            if self.layout_per_head:  # one block, but it may be off for some heads
                on = self.layout[:, q0 // bq, k0 // bk]
                return None if bool(on.all()) else on[:, None, None]
            return None  # a single layout block: the whole tile is on (off tiles were skipped)
        iq = torch.arange(q0, q0 + bm, device=self.layout.device) // bq
        ik = torch.arange(k0, k0 + bn, device=self.layout.device) // bk
        return self.layout[..., iq[:, None], ik[None, :]]

    def check_layout(self, lq: int, lk: int, heads: int) -> None:
        if self.layout is None:
            return
        bq, bk = self.layout_block
        need = (math.ceil(lq / bq), math.ceil(lk / bk))
        if tuple(self.layout.shape[-2:]) != need:
            raise ValueError(f"TilingMask.layout: expected {need} blocks for Lq={lq}, Lk={lk} with block "
                             f"{self.layout_block}, got {tuple(self.layout.shape[-2:])}")
        if self.layout_per_head and self.layout.shape[0] != heads:
            raise ValueError(f"TilingMask.layout: expected {heads} heads, got {self.layout.shape[0]}")

    def dense(self, lq: int, lk: int, device: torch.device | str = "cpu", off: int | None = None) -> torch.Tensor:
        """The full boolean mask [Lq, Lk] (or [H, Lq, Lk]). For tests and the reference backend only."""
        off = lk - lq if off is None else off
        i = torch.arange(lq, device=device)[:, None]
        j = torch.arange(lk, device=device)[None, :]
        r = j - i - off
        m = (r <= self.right_bound) & (r >= -self.left_bound)
        if self.layout is not None:
            bq, bk = self.layout_block
            m = m & self.layout.to(device)[..., i // bq, j // bk]
        return m

    def nbytes_template(self, bm: int, bn: int) -> int:
        """Bytes of mask state used for [bm, bn] tiles (template plus block layout)."""
        band = 0 if self.is_band_free else (bm + bn) ** 2
        return band + (0 if self.layout is None else self.layout.numel())


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _window_pair(window: int | tuple[int, int], causal: bool) -> tuple[int, int | None]:
    if isinstance(window, int) and not isinstance(window, bool):
        if window < 1:
            raise ValueError(f"window: expected an int >= 1 or a pair (left, right) of ints >= 0, got {window}")
        return window - 1, (0 if causal else window - 1)
    if (isinstance(window, tuple | list) and len(window) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= -1 for x in window)):
        left, right = (None if x == -1 else x for x in window)  # -1 = unbounded, as in flash-attn
        return left, (0 if causal else right)
    raise ValueError(f"window: expected an int >= 1 or a pair (left, right) of ints >= -1, got {window!r}")


def make_mask(causal: bool, window: int | tuple[int, int] | None, mask: TilingMask | None) -> TilingMask:
    """Combine the ``causal`` / ``window`` arguments of :func:`fastattention.attention` with a TilingMask."""
    m = TilingMask(is_causal=causal)
    if window is not None:
        left, right = _window_pair(window, causal)
        m = TilingMask(is_causal=causal, left=left, right=right)
    if mask is not None:
        m = m & mask
    return m
