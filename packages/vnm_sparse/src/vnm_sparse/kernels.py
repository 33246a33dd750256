"""Triton V:N:M matmul: y = x @ W^T for a weight stored as :class:`vnm_sparse.functional.VNMPacked`.

What is computed: every program owns a tile of BLOCK_T tokens by BLOCK_R output rows, where the rows
lie inside one V-row block, so they share the block's kept columns. For each chunk of BLOCK_G column
groups it
  1. loads the 4 kept column offsets of each group (col_idx) and gathers those input columns of x
     into a dense [BLOCK_T, 4 * BLOCK_G] tile (columns past in_features are masked to 0: padding);
  2. rebuilds the 2:4 weight tile [BLOCK_R, 4 * BLOCK_G] from the 2 values per row and group and their
     2-bit positions (meta), with zeros in the other two slots;
  3. accumulates tile_x @ tile_w^T on dense tensor cores in fp32.
The reduction length is 4C/M instead of C, so the FLOPs drop by M/4 against dense (the 2:4 zeros are
kept: a sparse-tensor-core MMA would halve them again; that needs CUTLASS/cuSPARSELt and is not
implemented here). ``vnm_matmul_reference`` (dense decompression) and ``vnm_matmul_torch`` (the same
gather in torch) live in :mod:`vnm_sparse.functional`.

Importing this module never needs Triton or a GPU; :func:`vnm_matmul` raises when Triton is missing.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from vnm_sparse.functional import KEEP_COLS, VNMPacked, vnm_matmul_blocked

try:  # Triton is optional
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the environment
    HAS_TRITON = False


def has_triton() -> bool:
    return HAS_TRITON


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def block_rows(v: int) -> int | None:
    """Rows per program: the largest of 128, 64, 32, 16 that divides V (None if V is not a multiple of 16)."""
    for b in (128, 64, 32, 16):
        if v % b == 0:
            return b
    return None


def triton_supported(packed: VNMPacked, x: Tensor) -> str | None:
    """None when the Triton kernel can run on these operands, else the reason it cannot."""
    if not HAS_TRITON:
        return "triton is not installed"
    if not (x.is_cuda or _interpret()):
        return f"x is on {x.device}; the Triton kernel needs CUDA (or TRITON_INTERPRET=1)"
    if block_rows(packed.v) is None:
        return f"v={packed.v} is not a multiple of 16 (tensor-core tiles need at least 16 rows of one block)"
    if x.dtype != packed.values.dtype:
        return f"x dtype {x.dtype} differs from the weight dtype {packed.values.dtype}"
    return None


def resolve_backend(backend: str, packed: VNMPacked, x: Tensor) -> str:
    """"triton" or "torch" for ``backend`` in {"auto", "triton", "torch"}.

    "auto" picks Triton for CUDA inputs when :func:`triton_supported` finds no reason against it; "triton"
    raises with that reason.
    """
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"backend: expected 'auto', 'triton' or 'torch', given {backend!r}")
    if backend == "torch" or (backend == "auto" and not x.is_cuda):
        return "torch"  # the interpreter is for tests: "auto" never picks it
    reason = triton_supported(packed, x)
    if backend == "triton" and reason is not None:
        raise RuntimeError(f"backend='triton' cannot run: {reason}")
    return "torch" if reason else "triton"


if HAS_TRITON:

    def _configs():
        if _interpret():
            return [triton.Config({"BLOCK_T": 16, "BLOCK_G": 4}, num_warps=1)]
        return [
            triton.Config({"BLOCK_T": bt, "BLOCK_G": bg}, num_warps=w, num_stages=s)
            for bt in (64, 128) for bg in (8, 16, 32) for w in (4, 8) for s in (3, 4)
        ]

    @triton.autotune(configs=_configs(), key=["T", "R", "C", "V", "M"])
    @triton.jit
    def _vnm_matmul_kernel(
        x_ptr, vals_ptr, meta_ptr, cols_ptr, bias_ptr, y_ptr,
        T, R, C, G,
        stride_xt, stride_yt,
        V: tl.constexpr, M: tl.constexpr, HAS_BIAS: tl.constexpr,
        BLOCK_T: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr,
    ):
        pid_t = tl.program_id(0)
        pid_r = tl.program_id(1)
        toks = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)  # [BT]
        rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)  # [BR], all inside row block rb
        rb = (pid_r * BLOCK_R) // V
        slot = tl.arange(0, 4)  # [4]
        tmask = toks < T
        rmask = rows < R
        acc = tl.zeros((BLOCK_T, BLOCK_R), dtype=tl.float32)
        for g0 in range(0, G, BLOCK_G):
            gs = g0 + tl.arange(0, BLOCK_G)  # [BG]
            gmask = gs < G
            # (1) gather the kept input columns of this row block: [BT, 4 BG]
            cidx = tl.load(cols_ptr + (rb * G + gs[:, None]) * 4 + slot[None, :], mask=gmask[:, None], other=0)
            xcol = tl.reshape(gs[:, None] * M + cidx.to(tl.int32), (BLOCK_G * 4,))  # [4 BG]
            xt = tl.load(x_ptr + toks[:, None] * stride_xt + xcol[None, :],
                         mask=tmask[:, None] & (xcol[None, :] < C), other=0.0)
            # (2) rebuild the 2:4 weight tile from values and 2-bit positions: [BR, 4 BG]
            wmask = rmask[:, None] & gmask[None, :]
            voff = (rows[:, None] * G + gs[None, :]) * 2
            v0 = tl.load(vals_ptr + voff, mask=wmask, other=0.0)
            v1 = tl.load(vals_ptr + voff + 1, mask=wmask, other=0.0)
            meta = tl.load(meta_ptr + rows[:, None] * G + gs[None, :], mask=wmask, other=0).to(tl.int32)
            p0 = (meta & 3)[:, :, None]
            p1 = ((meta >> 2) & 3)[:, :, None]
            s3 = slot[None, None, :]
            w4 = tl.where(p0 == s3, v0[:, :, None], 0.0) + tl.where(p1 == s3, v1[:, :, None], 0.0)
            w4 = tl.reshape(w4.to(xt.dtype), (BLOCK_R, BLOCK_G * 4))
            # (3) dense tensor-core MMA over the gathered reduction axis
            acc = tl.dot(xt, tl.trans(w4), acc)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + rows, mask=rmask, other=0.0).to(tl.float32)[None, :]
        tl.store(y_ptr + toks[:, None] * stride_yt + rows[None, :], acc.to(y_ptr.dtype.element_ty),
                 mask=tmask[:, None] & rmask[None, :])


def vnm_matmul(x: Tensor, packed: VNMPacked, bias: Tensor | None = None, *, backend: str = "auto",
               out: Tensor | None = None) -> Tensor:
    """y = x @ W^T + bias for a V:N:M-compressed W (forward only).

    Args:
        x: [..., C] activations (same dtype as the packed values for Triton).
        packed: the compressed weight (see :func:`vnm_sparse.functional.pack_vnm`).
        bias: optional [R].
        backend: "auto" (Triton on CUDA when V is a multiple of 16, else torch), "triton" or "torch".
        out: optional [T, R] output buffer for the Triton path (contiguous, x's dtype).

    Returns:
        [..., R].
    """
    r, c = packed.shape
    if x.shape[-1] != c:
        raise ValueError(f"x: expected last dimension {c} (in_features), given {x.shape[-1]}")
    if resolve_backend(backend, packed, x) == "torch":
        return vnm_matmul_blocked(x, packed, bias)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, c).contiguous()
    t = x2.shape[0]
    g = packed.col_idx.shape[1]
    if out is not None:
        if out.shape != (t, r) or out.dtype != x.dtype or not out.is_contiguous():
            raise ValueError(f"out: expected a contiguous {(t, r)} {x.dtype} tensor, given {tuple(out.shape)} {out.dtype}")
        y = out
    else:
        y = torch.empty(t, r, dtype=x.dtype, device=x.device)
    br = block_rows(packed.v)
    grid = lambda meta: (triton.cdiv(t, meta["BLOCK_T"]), triton.cdiv(r, br))
    _vnm_matmul_kernel[grid](
        x2, packed.values.contiguous(), packed.meta.contiguous(), packed.col_idx.contiguous(),
        bias if bias is not None else x2, y,
        t, r, c, g, x2.stride(0), y.stride(0),
        V=packed.v, M=packed.m, HAS_BIAS=bias is not None, BLOCK_R=br,
    )
    return y.reshape(*lead, r)


__all__ = ["HAS_TRITON", "KEEP_COLS", "block_rows", "has_triton", "resolve_backend", "triton_supported", "vnm_matmul"]
