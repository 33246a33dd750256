"""Pure-torch V:N:M math: importance scores, masks, the pattern check, mask diversity, V/M selection,
the compressed format and the reference matmul.

Legend (shapes):
    R, C    rows (output features) and columns (input features) of a weight W [R, C]
    V, M    block height and width; each V x M block keeps the same 4 columns for its V rows,
            then 2 of those 4 in each row (2:4), so N = 2 and the density is 2/M
    RB, G   number of row blocks ceil(R / V) and column groups ceil(C / M)
    K       number of 4-column subsets of a group, C(M, 4)

Paper: "Beyond 2:4" (arXiv 2410.16135), Sec. 2 (pattern, mask selection), Sec. 3.1 (V and M selection).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

KEEP_COLS = 4  # columns kept per V x M block (V:N:M runs 2:4 on sparse tensor cores)


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------

def _validate_vnm(v: int, n: int, m: int | None) -> int:
    if m is None:
        raise ValueError("m: expected an integer >= 4 (columns per block), given None")
    if not isinstance(v, int) or v < 1:
        raise ValueError(f"v: expected an integer >= 1, given {v!r}")
    if n != 2:
        raise ValueError(f"n: expected 2 (V:N:M keeps 2 of the 4 selected columns per row), given {n!r}")
    if not isinstance(m, int) or m < KEEP_COLS:
        raise ValueError(f"m: expected an integer >= 4 (4 columns are kept per block), given {m!r}")
    return m


def _validate_weight(weight: Tensor, what: str = "weight") -> None:
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"{what}: expected a 2-D tensor [out_features, in_features], given {shape}")
    if weight.is_floating_point() and not torch.isfinite(weight).all():
        bad = (~torch.isfinite(weight)).nonzero()[0].tolist()
        raise ValueError(f"{what}: expected finite values, given a non-finite value at index {tuple(bad)}")


def _check_divisible(shape: tuple[int, int], v: int, m: int, pad: bool) -> None:
    r, c = shape
    problems = []
    if r % v:
        problems.append(f"v={v} does not divide the {r} rows (out_features)")
    if c % m:
        problems.append(f"m={m} does not divide the {c} columns (in_features)")
    if problems and not pad:
        raise ValueError("; ".join(problems) + "; pass pad=True to pad the last block (padded entries are never kept)")


def _pad_to_blocks(x: Tensor, v: int, m: int, value: float) -> Tensor:
    r, c = x.shape
    rp, cp = -r % v, -c % m
    if rp or cp:
        x = torch.nn.functional.pad(x, (0, cp, 0, rp), value=value)
    return x


# ----------------------------------------------------------------------------------------------
# importance scores
# ----------------------------------------------------------------------------------------------

def ria_score(weight: Tensor, act_norm: Tensor, alpha: float = 0.5) -> Tensor:
    """Relative importance and activations (RIA, Zhang et al. ICLR'24), the paper's LLM score.

    RIA_ij = (|W_ij| / sum_k |W_kj| + |W_ij| / sum_k |W_ik|) * ||X_j||_2^alpha.

    Args:
        weight: [R, C].
        act_norm: [C], the L2 norm of each input feature over calibration tokens.
        alpha: exponent of the activation norm.
    """
    _validate_weight(weight)
    if act_norm.shape != (weight.shape[1],):
        raise ValueError(f"act_norm: expected shape ({weight.shape[1]},) (one norm per input feature), "
                         f"given {tuple(act_norm.shape)}")
    if not torch.isfinite(act_norm).all() or (act_norm < 0).any():
        raise ValueError("act_norm: expected finite non-negative norms, given negative or non-finite values")
    a = weight.detach().abs().float()
    eps = torch.finfo(torch.float32).tiny
    rel = a / (a.sum(0, keepdim=True) + eps) + a / (a.sum(1, keepdim=True) + eps)  # [R, C]
    return rel * act_norm.float().to(a.device).pow(alpha)[None, :]


def importance(weight: Tensor, score: str | Tensor = "magnitude", act_norm: Tensor | None = None,
               alpha: float = 0.5) -> Tensor:
    """The importance matrix [R, C] (float32, >= 0) for a score name or a given tensor."""
    _validate_weight(weight)
    if isinstance(score, Tensor):
        if score.shape != weight.shape:
            raise ValueError(f"score: expected a tensor of the weight's shape {tuple(weight.shape)}, "
                             f"given {tuple(score.shape)}")
        if not torch.isfinite(score).all():
            raise ValueError("score: expected finite values, given non-finite ones")
        return score.detach().float()
    if score == "magnitude":
        return weight.detach().abs().float()
    if score == "ria":
        if act_norm is None:
            raise ValueError("act_norm: expected input-feature norms [in_features] for score='ria' (collect them "
                             "with vnm_sparse.collect_act_norms on calibration data), given None")
        return ria_score(weight, act_norm, alpha)
    raise ValueError(f"score: expected 'magnitude', 'ria' or a tensor, given {score!r}")


# ----------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------

def _subsets(m: int, device: torch.device) -> Tensor:
    return torch.tensor(list(itertools.combinations(range(m), KEEP_COLS)), device=device)  # [K, 4]


def _top2_sum(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """Sum of the two largest of four same-shaped tensors, elementwise (min/max network, no sort)."""
    hi1, lo1 = torch.maximum(a, b), torch.minimum(a, b)
    hi2, lo2 = torch.maximum(c, d), torch.minimum(c, d)
    return torch.maximum(hi1, hi2) + torch.maximum(torch.minimum(hi1, hi2), torch.maximum(lo1, lo2))


def select_columns(blocks: Tensor, exact: bool = False, chunk_elems: int = 1 << 24) -> Tensor:
    """Choose the 4 kept columns of each block.

    Args:
        blocks: scores [RB, V, G, M].
        exact: maximise the retained score after the per-row top-2 over all C(M, 4) subsets;
            otherwise keep the 4 columns with the largest L1 norm over the V rows.

    Returns:
        Sorted column indices [RB, G, 4] (int64, each < M).
    """
    rb, v, g, m = blocks.shape
    if m == KEEP_COLS:
        return torch.arange(KEEP_COLS, device=blocks.device).expand(rb, g, KEEP_COLS).clone()
    if not exact:
        colsum = blocks.sum(1)  # [RB, G, M]
        return colsum.topk(KEEP_COLS, dim=-1).indices.sort(-1).values
    subs = _subsets(m, blocks.device)  # [K, 4]
    k = subs.shape[0]
    per_rb = v * g * k * KEEP_COLS
    step = max(1, chunk_elems // per_rb)
    out = []
    for s in range(0, rb, step):
        b = blocks[s:s + step]  # [rb', V, G, M]
        kept = _top2_sum(*(b[..., subs[:, i]] for i in range(KEEP_COLS))).sum(1)  # [rb', G, K] retained
        out.append(subs[kept.argmax(-1)])  # [rb', G, 4]
    return torch.cat(out)


def vnm_mask(weight: Tensor, v: int, n: int = 2, m: int | None = None, *, score: str | Tensor = "magnitude",
             act_norm: Tensor | None = None, exact: bool = False, pad: bool = False, alpha: float = 0.5) -> Tensor:
    """The V:N:M mask of a weight: in every V x M block keep the same 4 columns, then 2 of them per row.

    Args:
        weight: [R, C] (out_features x in_features).
        v: rows per block.
        n: kept entries per row among the 4 columns; must be 2.
        m: columns per block (>= 4); density 2/m.
        score: "magnitude", "ria" (needs ``act_norm``) or an importance tensor [R, C].
        act_norm: [C] input-feature L2 norms from calibration data (RIA).
        exact: exhaustive search of the C(m, 4) column subsets per block (vectorised).
        pad: allow shapes that v or m do not divide (the last block is partial).
        alpha: RIA activation exponent.

    Returns:
        Boolean mask [R, C].

    Paper: Sec. 2 (column L1 norm, then 2:4); exact search as VENOM's ``group_n_m2``.

    Example:
        >>> w = torch.randn(128, 80)
        >>> mask = vnm_mask(w, 64, 2, 5)
        >>> check_vnm(mask, 64, 2, 5) and mask.float().mean().item()
        0.4
    """
    m = _validate_vnm(v, n, m)
    _validate_weight(weight)
    _check_divisible(tuple(weight.shape), v, m, pad)
    s = importance(weight, score, act_norm, alpha)
    r, c = s.shape
    s = _pad_to_blocks(s, v, m, value=-1.0)  # padded entries score below every real one
    rp, cp = s.shape
    blocks = s.reshape(rp // v, v, cp // m, m)  # [RB, V, G, M]
    cols = select_columns(blocks, exact=exact)  # [RB, G, 4]
    return _mask_from_cols(blocks, cols)[:r, :c]


def _mask_from_cols(blocks: Tensor, cols: Tensor) -> Tensor:
    """Per-row top-2 among the chosen columns; returns the padded [RB*V, G*M] boolean mask."""
    rb, v, g, m = blocks.shape
    idx = cols[:, None].expand(rb, v, g, KEEP_COLS)  # [RB, V, G, 4]
    sel = blocks.gather(-1, idx)  # [RB, V, G, 4]
    top = sel.topk(2, dim=-1).indices  # [RB, V, G, 2]
    kept_cols = idx.gather(-1, top)  # [RB, V, G, 2]
    mask = torch.zeros_like(blocks, dtype=torch.bool)
    mask.scatter_(-1, kept_cols, True)
    return mask.reshape(rb * v, g * m)


def vnm_mask_reference(weight: Tensor, v: int, n: int = 2, m: int | None = None, *,
                       score: str | Tensor = "magnitude", act_norm: Tensor | None = None,
                       exact: bool = False, alpha: float = 0.5) -> Tensor:
    """Loop-per-block reference of :func:`vnm_mask` (slow; for tests). Shapes must divide."""
    m = _validate_vnm(v, n, m)
    _check_divisible(tuple(weight.shape), v, m, pad=False)
    s = importance(weight, score, act_norm, alpha)
    r, c = s.shape
    mask = torch.zeros(r, c, dtype=torch.bool)
    for i in range(0, r, v):
        for j in range(0, c, m):
            blk = s[i:i + v, j:j + m]
            if exact:
                best, best_val = None, -math.inf
                for sub in itertools.combinations(range(m), KEEP_COLS):
                    val = sum(sum(sorted(blk[row, list(sub)].tolist())[-2:]) for row in range(v))
                    if val > best_val:
                        best, best_val = list(sub), val
                cols = best
            else:
                cols = sorted(blk.sum(0).topk(KEEP_COLS).indices.tolist())
            for row in range(v):
                vals = blk[row, cols]
                for t in vals.topk(2).indices.tolist():
                    mask[i + row, j + cols[t]] = True
    return mask


def check_vnm(mask: Tensor, v: int, n: int = 2, m: int | None = None, *, pad: bool = False,
              exact_n: bool = False) -> bool:
    """Check that a mask follows V:N:M; raise ``ValueError`` naming the first violating block.

    Args:
        mask: [R, C] boolean (or 0/1) mask.
        v, n, m: the pattern.
        pad: allow a partial last block when v or m do not divide the shape.
        exact_n: require exactly n kept entries per row and block (not at most n).

    Returns:
        True when the mask follows the pattern.
    """
    m = _validate_vnm(v, n, m)
    if mask.dim() != 2:
        raise ValueError(f"mask: expected a 2-D tensor, given shape {tuple(mask.shape)}")
    _check_divisible(tuple(mask.shape), v, m, pad)
    b = _pad_to_blocks(mask.bool().to(torch.uint8), v, m, value=0)
    rp, cp = b.shape
    blocks = b.reshape(rp // v, v, cp // m, m).bool()
    per_row = blocks.sum(-1)  # [RB, V, G]
    bad_row = per_row > n if not exact_n else per_row != n
    if bad_row.any():
        rb, vr, g = bad_row.nonzero()[0].tolist()
        raise ValueError(f"mask violates {v}:{n}:{m} at row {rb * v + vr}, columns {g * m}..{g * m + m - 1} "
                         f"(block ({rb}, {g})): expected {'exactly' if exact_n else 'at most'} {n} kept per row, "
                         f"found {per_row[rb, vr, g].item()}")
    ncols = blocks.any(1).sum(-1)  # [RB, G]
    if (ncols > KEEP_COLS).any():
        rb, g = (ncols > KEEP_COLS).nonzero()[0].tolist()
        raise ValueError(f"mask violates {v}:{n}:{m} in block ({rb}, {g}) (rows {rb * v}..{rb * v + v - 1}, "
                         f"columns {g * m}..{g * m + m - 1}): expected at most 4 distinct kept columns across "
                         f"the block's rows, found {ncols[rb, g].item()}")
    return True


def retained_score(score: Tensor, mask: Tensor) -> float:
    """Sum of the importance kept by a mask."""
    return float((score * mask).sum())


# ----------------------------------------------------------------------------------------------
# mask diversity and V/M selection (Sec. 3.1)
# ----------------------------------------------------------------------------------------------

def mask_diversity(v: int, m: int, n: int = 2, numel: int = 1) -> float:
    """Natural log of the V:N:M mask diversity of ``numel`` weights (per weight by default).

    A V x M block has C(M, 4) column choices and C(4, 2) = 6 choices per row, so a layer of
    ``numel`` weights has MD = (C(M, 4) * 6^V)^(numel / (V M)) masks and
    ln MD / numel = ln C(M, 4) / (V M) + ln 6 / M, which ranks patterns independently of the layer shape.

    Paper: Sec. 3.1 (mask diversity, second sieve of the V/M selection).

    Example:
        >>> round(mask_diversity(64, 5), 3), round(mask_diversity(64, 8), 3)
        (0.363, 0.232)
    """
    m = _validate_vnm(v, n, m)
    per_block = math.log(math.comb(m, KEEP_COLS)) + v * math.log(math.comb(KEEP_COLS, n))
    return per_block / (v * m) * numel


@dataclass(frozen=True)
class VMSelection:
    """Outcome of :func:`select_vm`: the chosen pair and both sieves' survivors."""

    v: int
    m: int
    speedup: float
    mask_diversity: float
    sieve1: tuple[tuple[int, int], ...]  # (v, m) meeting the speedup, smallest m per v
    table: tuple[tuple[int, int, float, float], ...]  # (v, m, speedup, ln MD per weight) for all pairs


def select_vm(speedups: Mapping[tuple[int, int], float], min_speedup: float) -> VMSelection:
    """Heuristic V and M selection: a speedup sieve, then maximal mask diversity.

    Args:
        speedups: measured speedup of the V:N:M matmul over dense for each (v, m), e.g. from
            :func:`vnm_sparse.benchmarks.profile_speedups` on the target GPU and model shapes.
        min_speedup: the required speedup s.

    Returns:
        The selection; ``(sel.v, sel.m)`` is the pattern to use.

    Paper: Sec. 3.1: sieve 1 keeps, for every V, the smallest M whose speedup meets s; sieve 2 picks the
    survivor with the largest mask diversity.
    """
    if not speedups:
        raise ValueError("speedups: expected a non-empty mapping {(v, m): speedup}, given an empty one")
    table = []
    for (v, m), s in sorted(speedups.items()):
        if not math.isfinite(s):
            raise ValueError(f"speedups[{(v, m)}]: expected a finite speedup, given {s!r}")
        table.append((v, m, float(s), mask_diversity(v, m)))
    sieve1 = []
    for v in sorted({row[0] for row in table}):
        ok = [row for row in table if row[0] == v and row[2] >= min_speedup]
        if ok:
            sieve1.append(min(ok, key=lambda r: r[1]))
    if not sieve1:
        best = max(table, key=lambda r: r[2])
        raise ValueError(f"min_speedup: expected a speedup some (v, m) reaches, given {min_speedup} "
                         f"(the best measured is {best[2]:.3f} at v={best[0]}, m={best[1]})")
    v, m, s, md = max(sieve1, key=lambda r: (r[3], r[2]))
    return VMSelection(v=v, m=m, speedup=s, mask_diversity=md, sieve1=tuple((r[0], r[1]) for r in sieve1),
                       table=tuple(table))


# ----------------------------------------------------------------------------------------------
# compressed storage and the reference matmul
# ----------------------------------------------------------------------------------------------

@dataclass
class VNMPacked:
    """A V:N:M weight in compressed form.

    Attributes:
        values: [R, G, 2] the two kept values of each row and column group (zeros where a padded
            column was kept).
        col_idx: [RB, G, 4] uint8, the 4 kept columns of each block (offsets < M inside the group).
        meta: [R, G] uint8, the 2:4 positions of the kept values among the 4 columns,
            ``pos0 | pos1 << 2`` (the 4 bits per group of NVIDIA's 2:4 metadata).
        shape: (R, C) of the dense weight.
        v, m: the pattern.
    """

    values: Tensor
    col_idx: Tensor
    meta: Tensor
    shape: tuple[int, int]
    v: int
    m: int

    @property
    def nbytes(self) -> int:
        """Bytes of the stored tensors, exactly."""
        return sum(t.numel() * t.element_size() for t in (self.values, self.col_idx, self.meta))

    @property
    def packed_nbytes(self) -> int:
        """Bytes with bit-packed indices: ceil(log2 M) bits per kept column, 4 bits of 2:4 metadata per
        row and group (as the hardware format stores them)."""
        r, _ = self.shape
        rb, g, _ = self.col_idx.shape
        idx_bits = rb * g * KEEP_COLS * max(1, math.ceil(math.log2(self.m)))
        meta_bits = r * g * 4
        return self.values.numel() * self.values.element_size() + math.ceil((idx_bits + meta_bits) / 8)

    def to(self, *args, **kwargs) -> VNMPacked:
        values = self.values.to(*args, **kwargs)
        dev = values.device
        return VNMPacked(values, self.col_idx.to(dev), self.meta.to(dev), self.shape, self.v, self.m)


def storage_bytes(shape: tuple[int, int], v: int, m: int, dtype: torch.dtype = torch.float16) -> dict[str, int]:
    """Exact bytes of a [R, C] weight: dense, V:N:M as stored by :class:`VNMPacked`, and bit-packed."""
    r, c = shape
    esize = torch.empty((), dtype=dtype).element_size()
    rb, g = math.ceil(r / v), math.ceil(c / m)
    stored = r * g * 2 * esize + rb * g * KEEP_COLS + r * g
    idx_bits = rb * g * KEEP_COLS * max(1, math.ceil(math.log2(m)))
    packed = r * g * 2 * esize + math.ceil((idx_bits + r * g * 4) / 8)
    return {"dense": r * c * esize, "stored": stored, "packed": packed}


def pack_vnm(weight: Tensor, mask: Tensor, v: int, m: int) -> VNMPacked:
    """Compress a weight under a V:N:M mask (validated with :func:`check_vnm`).

    Rows each need exactly 2 kept entries per group among the block's columns; padded groups are
    completed with zero values.
    """
    _validate_weight(weight)
    if mask.shape != weight.shape:
        raise ValueError(f"mask: expected the weight's shape {tuple(weight.shape)}, given {tuple(mask.shape)}")
    check_vnm(mask, v, 2, m, pad=True)
    r, c = weight.shape
    w = _pad_to_blocks(weight.detach(), v, m, value=0.0)
    mk = _pad_to_blocks(mask.bool().to(torch.uint8), v, m, value=0).bool()
    rp, cp = w.shape
    rb, g = rp // v, cp // m
    wb = w.reshape(rb, v, g, m)
    mb = mk.reshape(rb, v, g, m)
    # Kept columns per block: the mask's columns first, completed by unused ones (lowest index).
    used = mb.any(1)  # [RB, G, M]
    order = torch.arange(m, device=w.device)
    key = (~used).to(torch.int64) * m + order  # used columns sort first, by index
    cols = key.argsort(-1)[..., :KEEP_COLS].sort(-1).values  # [RB, G, 4]
    idx = cols[:, None].expand(rb, v, g, KEEP_COLS)
    sel_m = mb.gather(-1, idx)  # [RB, V, G, 4]
    # Exactly two slots per row: the kept ones first, completed by unkept slots (value 0).
    skey = (~sel_m).to(torch.int64) * KEEP_COLS + torch.arange(KEEP_COLS, device=w.device)
    pos = skey.argsort(-1)[..., :2].sort(-1).values  # [RB, V, G, 2]
    vals = wb.gather(-1, idx).gather(-1, pos) * sel_m.gather(-1, pos)  # [RB, V, G, 2]
    meta = (pos[..., 0] | (pos[..., 1] << 2)).to(torch.uint8)  # [RB, V, G]
    return VNMPacked(values=vals.reshape(rp, g, 2)[:r].contiguous(), col_idx=cols.to(torch.uint8).contiguous(),
                     meta=meta.reshape(rp, g)[:r].contiguous(), shape=(r, c), v=v, m=m)


def expand_24(packed: VNMPacked) -> Tensor:
    """The packed values placed in their 4 kept columns: [R, G, 4] (2:4 dense form)."""
    meta = packed.meta.to(torch.int64)
    pos = torch.stack([meta & 3, (meta >> 2) & 3], -1)  # [R, G, 2]
    w4 = torch.zeros(*packed.values.shape[:2], KEEP_COLS, dtype=packed.values.dtype, device=packed.values.device)
    return w4.scatter(-1, pos, packed.values)


def absolute_columns(packed: VNMPacked) -> Tensor:
    """Absolute input-column index of each kept column: [RB, G * 4] (int64; may reach the padding)."""
    rb, g, _ = packed.col_idx.shape
    base = torch.arange(g, device=packed.col_idx.device)[:, None] * packed.m
    return (packed.col_idx.to(torch.int64) + base).reshape(rb, g * KEEP_COLS)


def unpack_vnm(packed: VNMPacked) -> Tensor:
    """Decompress to the dense [R, C] weight (zeros where pruned)."""
    r, c = packed.shape
    v = packed.v
    g = packed.col_idx.shape[1]
    w4 = expand_24(packed).reshape(r, g * KEEP_COLS)  # [R, G*4]
    cols = absolute_columns(packed).repeat_interleave(v, 0)[:r]  # [R, G*4]
    dense = torch.zeros(r, g * packed.m, dtype=w4.dtype, device=w4.device)
    dense.scatter_(1, cols, w4)
    return dense[:, :c]


def vnm_matmul_reference(x: Tensor, packed: VNMPacked, bias: Tensor | None = None) -> Tensor:
    """y = x @ W^T with W decompressed to dense (the slow, obviously correct reference)."""
    return torch.nn.functional.linear(x, unpack_vnm(packed).to(x.dtype), bias)


def vnm_matmul_torch(x: Tensor, packed: VNMPacked, bias: Tensor | None = None) -> Tensor:
    """y = x @ W^T computed as the kernel does: gather each row block's kept input columns, then a dense
    [T, 4G] x [4G, V] product per row block (M/4 x fewer FLOPs than dense).

    Args:
        x: [..., C].
        packed: the compressed weight [R, C].
        bias: optional [R].
    """
    r, c = packed.shape
    if x.shape[-1] != c:
        raise ValueError(f"x: expected last dimension {c} (in_features), given {x.shape[-1]}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, c)
    g = packed.col_idx.shape[1]
    v = packed.v
    rb = packed.col_idx.shape[0]
    if g * packed.m > c:
        x2 = torch.nn.functional.pad(x2, (0, g * packed.m - c))
    cols = absolute_columns(packed)  # [RB, 4G]
    w4 = expand_24(packed).reshape(r, g * KEEP_COLS).to(x.dtype)  # [R, 4G]
    if rb * v > r:
        w4 = torch.nn.functional.pad(w4, (0, 0, 0, rb * v - r))
    xg = x2[:, cols]  # [T, RB, 4G]
    y = torch.einsum("trk,rvk->trv", xg, w4.reshape(rb, v, g * KEEP_COLS)).reshape(x2.shape[0], rb * v)[:, :r]
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, r)


def vnm_matmul_blocked(x: Tensor, packed: VNMPacked, bias: Tensor | None = None, *,
                       tile_tokens: int = 2048) -> Tensor:
    """The CPU fast path of y = x @ W^T: one GEMM per (token tile, V-row block), no [T, RB, 4G] copy.

    Tokens are processed in tiles of ``tile_tokens`` (one tile up to 2,048 tokens: on a loaded 2-core
    machine fewer, larger GEMMs measured faster than L2-sized tiles). Per tile, x's tile is transposed once
    to [C, tt]; for every row block the block's 4G kept input rows are gathered (whole-row memcpys) into one reused [4G, tt]
    buffer and ``W4_b [V, 4G] @ buf`` is written straight into rows of a reused [R, tt] result, which is then
    copied into the contiguous [T, R] output (M/4 x fewer FLOPs than dense). Extra memory, independent of T:
    the transposed tile (C x tt), the gather buffer (4G x tt), the tile result (R x tt) and one block's
    [V, 4G] 2:4-expanded weight. With a single tile the tile result is the output, returned as the [T, R]
    transpose view (not contiguous), and the extra memory is one transposed copy of x plus the 4/M-of-x
    gather buffer (48 MB at C = R = 4096, T = 2048, against a 32 MB output). Same values as
    :func:`vnm_matmul_torch` and :func:`vnm_matmul_reference` up to fp32 rounding.

    When autograd needs a gradient (``x`` or the packed values require grad), it falls back to
    :func:`vnm_matmul_reference`, whose gradients are the dense ones restricted to the kept weights.
    """
    r, c = packed.shape
    if x.shape[-1] != c:
        raise ValueError(f"x: expected last dimension {c} (in_features), given {x.shape[-1]}")
    if tile_tokens < 1:
        raise ValueError(f"tile_tokens: expected >= 1, given {tile_tokens}")
    if torch.is_grad_enabled() and (x.requires_grad or packed.values.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return vnm_matmul_reference(x, packed, bias)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, c)
    t = x2.shape[0]
    g, v = packed.col_idx.shape[1], packed.v
    cp = g * packed.m  # padded columns hold zero weights; their (zero-filled) x rows keep the index valid
    cols = absolute_columns(packed)  # [RB, 4G]
    w4_buf = torch.empty(v, g, KEEP_COLS, dtype=x.dtype, device=x.device)  # one block's 2:4-expanded weight

    def block_weight(r0: int, r1: int) -> Tensor:  # [r1 - r0, 4G]
        meta = packed.meta[r0:r1].to(torch.int64)
        pos = torch.stack([meta & 3, (meta >> 2) & 3], -1)  # [V, G, 2] 2:4 positions
        w4 = w4_buf[:r1 - r0].zero_().scatter_(-1, pos, packed.values[r0:r1].to(x.dtype))
        return w4.reshape(r1 - r0, g * KEEP_COLS)

    bias_col = None if bias is None else bias.to(x.dtype)[:, None]

    def tile(xs: Tensor, buf: Tensor, yt: Tensor) -> None:  # [C, n] -> yt [R, n], one GEMM per row block
        for b in range(cols.shape[0]):
            r0, r1 = b * v, min(r, (b + 1) * v)
            torch.index_select(xs, 0, cols[b], out=buf)  # [4G, n]
            if bias_col is None:
                torch.mm(block_weight(r0, r1), buf, out=yt[r0:r1])
            else:
                torch.addmm(bias_col[r0:r1], block_weight(r0, r1), buf, out=yt[r0:r1])

    tt = tile_tokens
    if t <= tt:  # one tile: the [R, T] tile result is the output; return its [T, R] view (no copy)
        xs = x2.t() if cp == c else torch.nn.functional.pad(x2, (0, cp - c)).t()
        xs = xs.contiguous()  # [C, T]: gathering whole rows is a memcpy (a strided gather is ~10x slower)
        yt = torch.empty(r, t, dtype=x.dtype, device=x.device)
        tile(xs, torch.empty(g * KEEP_COLS, t, dtype=x.dtype, device=x.device), yt)
        return yt.t().reshape(*lead, r)
    y = torch.empty(t, r, dtype=x.dtype, device=x.device)
    xs = torch.zeros(cp, tt, dtype=x.dtype, device=x.device)  # [C(padded), tt]
    buf = torch.empty(g * KEEP_COLS, tt, dtype=x.dtype, device=x.device)  # [4G, tt]
    yt = torch.empty(r, tt, dtype=x.dtype, device=x.device)  # [R, tt]
    for t0 in range(0, t, tt):
        n = min(tt, t - t0)
        xs_n, buf_n, yt_n = (xs, buf, yt) if n == tt else (xs[:, :n], buf[:, :n], yt[:, :n])
        xs_n[:c].copy_(x2[t0:t0 + n].t())
        if n != tt:  # a strided view: index_select's out= needs a contiguous buffer
            xs_n, buf_n, yt_n = xs_n.contiguous(), buf_n.contiguous(), torch.empty(r, n, dtype=x.dtype,
                                                                                    device=x.device)
        tile(xs_n, buf_n, yt_n)
        y[t0:t0 + n].copy_(yt_n.t())
    return y.reshape(*lead, r)
