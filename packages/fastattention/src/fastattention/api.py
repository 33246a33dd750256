"""The public verb: :func:`attention`, one function over three backends that compute the same thing."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from fastattention import fast
from fastattention.config import DEFAULT_TILING, TilingConfig
from fastattention.functional import attention_reference, tiled_attention_backward, tiled_attention_forward
from fastattention.masks import TilingMask, make_mask

BACKENDS = ("auto", "reference", "torch", "triton")
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class _FlashPieces(torch.autograd.Function):
    """Autograd wrapper of the CPU fast path (:mod:`fastattention.fast`): saves O and LSE, never P."""

    @staticmethod
    def forward(ctx, q, k, v, mask, dense, scale, tiling, off):
        pieces = fast.plan(mask, q.shape[2], k.shape[2], off, block_m=tiling.block_m, block_n=tiling.block_n,
                           dense=dense is not None)
        o, lse = fast.flash_forward(q, k, v, pieces, scale=scale, mask=mask, dense=dense, off=off)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.pieces, ctx.mask, ctx.dense, ctx.scale, ctx.tiling, ctx.off = pieces, mask, dense, scale, tiling, off
        ctx.set_materialize_grads(False)
        return o, lse

    @staticmethod
    def backward(ctx, do, dlse):
        q, k, v, o, lse = ctx.saved_tensors
        if do is None:
            do = torch.zeros_like(o)
        if dlse is not None:  # the kernel's backward has no LSE gradient input: the tiled backward has
            dq, dk, dv = tiled_attention_backward(do.contiguous(), q, k, v, o, lse, ctx.mask, scale=ctx.scale,
                                                  dense_mask=ctx.dense, dlse=dlse, tiling=ctx.tiling, off=ctx.off)
        else:
            dq, dk, dv = fast.flash_backward(do, q, k, v, o, lse, ctx.pieces, scale=ctx.scale, mask=ctx.mask,
                                             dense=ctx.dense, off=ctx.off)
        return dq, dk, dv, None, None, None, None, None


class _TiledAttention(torch.autograd.Function):
    """Autograd wrapper of the torch tiled forward/backward (saves O and LSE, never P)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, dense, scale, tiling, off):
        o, lse = tiled_attention_forward(q, k, v, mask, scale=scale, dense_mask=dense, tiling=tiling, off=off)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.mask, ctx.dense, ctx.scale, ctx.tiling, ctx.off = mask, dense, scale, tiling, off
        return o, lse

    @staticmethod
    def backward(ctx, do, dlse):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = tiled_attention_backward(do.contiguous(), q, k, v, o, lse, ctx.mask, scale=ctx.scale,
                                              dense_mask=ctx.dense, dlse=dlse, tiling=ctx.tiling, off=ctx.off)
        return dq, dk, dv, None, None, None, None, None


_SERIAL = 16384  # below ATen's grain size (32768 elements) a CPU reduction runs on the calling thread
_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16)


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite: sums in the input's dtype (O(N d), no copy). A NaN or inf propagates
    into its sum, so finite sums prove finite entries; a non-finite sum (maybe overflow) is checked
    element-wise. On a CPU the sum must not open an ATen parallel region, whose start-up and barrier cost
    ~20 ms per reduction on a busy 2-core machine (measured at N = 1024, 8 heads: three such reductions
    doubled the forward time against SDPA): numpy's single-threaded SIMD sum over the same memory (no copy)
    where numpy has the dtype, else sums in chunks below ATen's grain size (one thread each)."""
    if t.device.type == "cpu" and t.numel() > _SERIAL:
        if t.dtype in _NUMPY_DTYPES:
            with np.errstate(over="ignore", invalid="ignore"):  # an overflowed sum is re-checked below
                s = t.numpy().sum()
            return bool(np.isfinite(s)) or bool(torch.isfinite(t).all())
        if t.is_contiguous():
            s = torch.stack([c.sum() for c in t.view(-1).split(_SERIAL)]).sum()
            return bool(torch.isfinite(s)) or bool(torch.isfinite(t).all())
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _check_inputs(q, k, v, scale, mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"attention: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"attention: {name} must be [batch, heads, seq, head_dim], got shape {tuple(t.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"attention: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.dtype not in _DTYPES:
        raise ValueError(f"attention: dtype must be one of {[str(d) for d in _DTYPES]}, got {q.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"attention: q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    b, h, lq, d = q.shape
    if k.shape[0] != b or v.shape[0] != b:
        raise ValueError(f"attention: batch sizes differ: q {b}, k {k.shape[0]}, v {v.shape[0]}")
    if k.shape[1] != v.shape[1] or k.shape[2] != v.shape[2]:
        raise ValueError(f"attention: k and v must have the same heads and length, got k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    if k.shape[3] != d:
        raise ValueError(f"attention: q and k head_dim must match, got q {d}, k {k.shape[3]}")
    if h % k.shape[1]:
        raise ValueError(f"attention: query heads ({h}) must be a multiple of key/value heads ({k.shape[1]})")
    if lq < 1 or k.shape[2] < 1 or d < 1:
        raise ValueError(f"attention: empty input, got q {tuple(q.shape)}, k {tuple(k.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not _all_finite(t.detach()):
            raise ValueError(f"attention: {name} must be finite, got NaN or inf values")
    if scale is not None and (not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0):
        raise ValueError(f"attention: scale must be a positive finite number or None, got {scale!r}")
    if mask is not None and not isinstance(mask, TilingMask | torch.Tensor):
        raise TypeError(f"attention: mask must be None, a TilingMask or a tensor, got {type(mask).__name__}")


def _dense_mask(mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    b, h, lq, _ = q.shape
    lk = k.shape[2]
    if mask.device != q.device:
        raise ValueError(f"attention: mask must be on {q.device}, got {mask.device}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise ValueError(f"attention: a tensor mask must be bool (True = attend) or float (additive), got {mask.dtype}")
    m = mask
    while m.dim() < 4:
        m = m.unsqueeze(0)
    if m.dim() != 4 or any(s not in (1, t) for s, t in zip(m.shape, (b, h, lq, lk))) or m.shape[-2:] != (lq, lk):
        raise ValueError(f"attention: mask must broadcast to [batch, heads, Lq, Lk] = {[b, h, lq, lk]} with its last "
                         f"two dims equal to (Lq, Lk), got {tuple(mask.shape)}")
    return m


def resolve(backend: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: TilingMask,
            dense: torch.Tensor | None) -> str:
    """The backend that will run: ``"auto"`` picks Triton on CUDA when it supports the call, else torch."""
    if backend not in BACKENDS:
        raise ValueError(f"attention: backend must be one of {BACKENDS}, got {backend!r}")
    if backend in ("reference", "torch"):
        return backend
    from fastattention import kernels

    why = kernels.unsupported_reason(q, k, v, mask, dense)
    if backend == "triton":
        if why is not None:
            raise ValueError(f"attention: backend='triton' cannot run this call: {why}")
        return "triton"
    if q.is_cuda:
        if why is None:
            return "triton"
        warnings.warn(f"fastattention: Triton kernel not used ({why}); falling back to the torch backend",
                      stacklevel=3)
    return "torch"


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False, scale: float | None = None,
    window: int | tuple[int, int] | None = None, mask: TilingMask | torch.Tensor | None = None,
    return_lse: bool = False, backend: str = "auto", tiling: TilingConfig | None = None,
    q_offset: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Exact softmax attention in O(N) memory (FlashAttention-2 with FastAttention's tiling).

    Args:
        q: queries [batch, heads, Lq, head_dim] (the layout of ``F.scaled_dot_product_attention``).
        k: keys [batch, kv_heads, Lk, head_dim]; ``heads`` must be a multiple of ``kv_heads`` (GQA/MQA).
        v: values [batch, kv_heads, Lk, v_head_dim].
        causal: causal mask aligned at the bottom right: query ``i`` sees keys ``<= i + Lk - Lq`` (as in
            KV-cache decoding; equals SDPA's ``is_causal`` when Lq == Lk).
        scale: softmax scale, default ``1 / sqrt(head_dim)``.
        window: sliding window; an int ``w`` lets each query see ``w`` keys ending at its own position
            (and ``w - 1`` after it when not causal), or a flash-attn style pair ``(left, right)``.
        mask: a :class:`TilingMask` (block-sparse etc., combined with ``causal``/``window``), or a dense
            bool (True = attend) / additive float tensor broadcastable to [batch, heads, Lq, Lk], which is
            read tile by tile (torch backend).
        return_lse: also return the log-sum-exp of the scaled scores, [batch, heads, Lq] fp32
            (-inf for rows with no visible key, whose output is 0). Differentiable.
        backend: "auto" (Triton on CUDA when supported, else torch), "reference" (naive, materialises the
            scores: tests only), "torch" (linear memory: on a CPU in fp32/fp64, SDPA's flash kernel per
            visible piece merged by LSE, see :mod:`fastattention.fast`; otherwise, or with
            ``TilingConfig(cpu_flash=False)``, the pure-torch two-level tiled loop), or "triton".
        tiling: block sizes (:class:`TilingConfig`), default ``DEFAULT_TILING``.
        q_offset: position of query 0 in key coordinates, for causal / window masks; default
            ``Lk - Lq`` (bottom-right). Lets a query chunk attend to a key chunk of a longer sequence
            (chunked prefill, split KV) with the right mask.

    Returns:
        the output [batch, heads, Lq, v_head_dim] in q's dtype, and the LSE if ``return_lse``.

    Paper: FastAttention (Lin et al., 2024), §3 (two-level tiling, tiling-mask); FlashAttention-2 Alg. 1-2.

    Example:
        >>> q, k, v = torch.randn(1, 8, 256, 64), torch.randn(1, 2, 256, 64), torch.randn(1, 2, 256, 64)
        >>> out = attention(q, k, v, causal=True)
        >>> out.shape
        torch.Size([1, 8, 256, 64])
    """
    _check_inputs(q, k, v, scale, mask)
    tiling = DEFAULT_TILING if tiling is None else tiling
    if not isinstance(tiling, TilingConfig):
        raise TypeError(f"attention: tiling must be a TilingConfig, got {type(tiling).__name__}")
    dense = _dense_mask(mask, q, k) if isinstance(mask, torch.Tensor) else None
    tmask = make_mask(causal, window, mask if isinstance(mask, TilingMask) else None)
    tmask.check_layout(q.shape[2], k.shape[2], q.shape[1])
    if tmask.layout is not None and tmask.layout.device != q.device:
        tmask = TilingMask(is_causal=tmask.is_causal, left=tmask.left, right=tmask.right,
                           layout=tmask.layout.to(q.device), layout_block=tmask.layout_block)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if q_offset is not None and (not isinstance(q_offset, int) or isinstance(q_offset, bool)):
        raise TypeError(f"attention: q_offset must be None or an int, got {q_offset!r}")
    off = k.shape[2] - q.shape[2] if q_offset is None else q_offset
    which = resolve(backend, q, k, v, tmask, dense)
    if which == "reference":
        o, lse = attention_reference(q, k, v, tmask, scale=scale, dense_mask=dense, off=off)
        lse = lse.float() if q.dtype != torch.float64 else lse
    elif which == "torch" and tiling.cpu_flash and fast.supported(q, v):
        o, lse = _FlashPieces.apply(q, k, v, tmask, dense, scale, tiling, off)
    elif which == "torch":
        o, lse = _TiledAttention.apply(q, k, v, tmask, dense, scale, tiling, off)
    else:
        from fastattention.kernels import triton_attention

        o, lse = triton_attention(q, k, v, tmask, scale, tiling, off)
    return (o, lse) if return_lse else o
