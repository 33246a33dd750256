"""Fused online transform + per-token int4 quantization + nibble packing (the paper's Sec. 3.4 kernel).

For each token ``x [n1 * n2]`` (viewed as ``X~ [n1, n2]``) one Triton program computes, in registers:

1. ``X~ <- X~ * s``                         (optional per-channel scale, kept online for post-norm models)
2. ``Y = P1^T X~ P2``                        (two ``tl.dot`` s: the Kronecker transform, Eq. 4)
3. ``a = max(|c_min min Y|, c_max max Y)``   (LAC-clipped symmetric range), ``scale = a / 7``
4. ``q = clamp(rint(Y / scale), -8, 7)``     (round half to even, as ``torch.round``)
5. pack ``q[2j]`` (low nibble) and ``q[2j + 1]`` (high nibble) into one byte.

So the transformed activation is never written to memory: one read of ``x``, one write of ``n / 2`` bytes
and a scale. The unfused path it replaces is two matmuls, a quantization pass and a packing pass.

:func:`kron_quant_pack` is the public wrapper, :func:`kron_quant_pack_reference` the torch reference; both
produce identical integer codes whenever the transformed values agree (they do bit for bit when the
transform is exact, e.g. Hadamard factors and small integer inputs; the kernel's dot products can round
differently from cuBLAS/MKL otherwise). Importing this module never needs Triton or a GPU.
"""

from __future__ import annotations

import torch

from flatquant import functional as FQ


def use_triton(backend: str, x: torch.Tensor) -> bool:
    """Whether ``backend`` (``"auto"``, ``"torch"``, ``"triton"``) runs the Triton kernel on ``x``
    (``papercommon.kernels.resolve_backend``: ``"auto"`` picks Triton for CUDA tensors only; ``"triton"`` on the
    CPU needs ``TRITON_INTERPRET=1`` and raises otherwise, never a silent fallback)."""
    from papercommon.kernels import resolve_backend

    return resolve_backend(backend, x) == "triton"


# ----------------------------------------------------------------------------- reference


def kron_reference(x: torch.Tensor, p1: torch.Tensor | None, p2: torch.Tensor | None,
                   diag: torch.Tensor | None = None) -> torch.Tensor:
    """``(x * s) (P1 (x) P2)`` in fp32 (the reference's transform, before quantization)."""
    x = x.float()
    if diag is not None:
        x = x * diag.float()
    return FQ.kronecker_matmul(x, None if p1 is None else p1.float(), None if p2 is None else p2.float())


def kron_quant_reference(x: torch.Tensor, p1: torch.Tensor | None, p2: torch.Tensor | None,
                         diag: torch.Tensor | None = None, bits: int = 4, clip_max: float = 1.0,
                         clip_min: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``quantize_sym(((x * s) (P1 (x) P2)), bits)`` per row: int8 codes ``[M, n]`` and scales ``[M, 1]`` (fp32)."""
    return FQ.quantize_sym(kron_reference(x, p1, p2, diag), bits, clip_max, clip_min)


def kron_quant_pack_reference(x: torch.Tensor, p1: torch.Tensor | None, p2: torch.Tensor | None,
                              diag: torch.Tensor | None = None, clip_max: float = 1.0,
                              clip_min: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference of :func:`kron_quant_pack`: packed int4 ``[M, n / 2]`` uint8 and scales ``[M, 1]``."""
    codes, scale = kron_quant_reference(x, p1, p2, diag, 4, clip_max, clip_min)
    return FQ.pack_int4(codes), scale


def transform_quant_unfused(x: torch.Tensor, p1: torch.Tensor | None, p2: torch.Tensor | None,
                            clip_max: float = 1.0, clip_min: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The unfused baseline in the input dtype: two matmuls, then a separate quantize and pack pass."""
    y = FQ.kronecker_matmul(x, p1, p2)
    codes, scale = FQ.quantize_sym(y, 4, clip_max, clip_min)
    return FQ.pack_int4(codes), scale


# ----------------------------------------------------------------------------- Triton

_KERNEL = None


def _triton():
    """``(triton, tl)`` through the one guard (``papercommon.kernels.import_triton``), or a clear error."""
    from papercommon.kernels import import_triton

    triton, tl = import_triton()
    if triton is None:
        raise RuntimeError("kron_quant_pack: the Triton kernel needs the `triton` package; install it, or use "
                           "backend='torch' (kron_quant_pack_reference)")
    return triton, tl


def _build_kernel():
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    triton, tl = _triton()

    @triton.jit
    def _kron_quant_pack_kernel(x_ptr, p1_ptr, p2_ptr, d_ptr, out_ptr, scale_ptr, N1, N2, stride_xm, stride_om,
                                clip_max, clip_min, HAS_P1: tl.constexpr, HAS_P2: tl.constexpr,
                                HAS_DIAG: tl.constexpr, BLOCK_N1: tl.constexpr, BLOCK_N2: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)
        r = tl.arange(0, BLOCK_N1)
        c = tl.arange(0, BLOCK_N2)
        mask = (r[:, None] < N1) & (c[None, :] < N2)
        offs = r[:, None] * N2 + c[None, :]
        # stage 1: load the token as an [n1, n2] tile (fp32), apply the optional per-channel scale
        x = tl.load(x_ptr + pid * stride_xm + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_DIAG:
            x = x * tl.load(d_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        # stage 2: Y = P1^T X P2 (padding rows/cols of P are zero, so padded entries of Y stay zero)
        if HAS_P2:
            cc = tl.arange(0, BLOCK_N2)
            p2 = tl.load(p2_ptr + cc[:, None] * N2 + c[None, :],
                         mask=(cc[:, None] < N2) & (c[None, :] < N2), other=0.0).to(tl.float32)
            x = tl.dot(x, p2, input_precision="ieee")
        if HAS_P1:
            rr = tl.arange(0, BLOCK_N1)
            # p1t[i, j] = P1[j, i]
            p1t = tl.load(p1_ptr + rr[None, :] * N1 + r[:, None],
                          mask=(r[:, None] < N1) & (rr[None, :] < N1), other=0.0).to(tl.float32)
            x = tl.dot(p1t, x, input_precision="ieee")
        # stage 3: LAC-clipped symmetric per-token range
        # (official get_scale_zero: the range includes 0, an all-zero token gets scale 1)
        xmax = tl.maximum(tl.max(tl.max(tl.where(mask, x, float("-inf")), axis=1), axis=0), 0.0) * clip_max
        xmin = tl.minimum(tl.min(tl.min(tl.where(mask, x, float("inf")), axis=1), axis=0), 0.0) * clip_min
        absmax = tl.maximum(tl.abs(xmin), xmax)
        scale = absmax / 7.0
        scale = tl.where(scale == 0.0, 1.0, scale)
        # stage 4: round half to even (matches torch.round), clamp to int4
        v = x / scale
        f = tl.floor(v + 0.5)
        tie = (f - v) == 0.5
        odd = (f - 2.0 * tl.floor(f * 0.5)) == 1.0
        f = tl.where(tie & odd, f - 1.0, f)
        q = tl.minimum(tl.maximum(f, -8.0), 7.0).to(tl.int32)
        # stage 5: pack pairs (2j, 2j + 1) of each row into bytes
        lo, hi = tl.split(tl.reshape(q, (BLOCK_N1, BLOCK_N2 // 2, 2)))
        packed = ((lo & 0xF) | ((hi & 0xF) << 4)).to(tl.uint8)
        c2 = tl.arange(0, BLOCK_N2 // 2)
        half = N2 // 2
        tl.store(out_ptr + pid * stride_om + r[:, None] * half + c2[None, :], packed,
                 mask=(r[:, None] < N1) & (c2[None, :] < half))
        tl.store(scale_ptr + pid, scale)

    _KERNEL = _kron_quant_pack_kernel
    return _KERNEL


def kron_quant_pack(x: torch.Tensor, p1: torch.Tensor | None, p2: torch.Tensor | None,
                    diag: torch.Tensor | None = None, clip_max: float = 1.0, clip_min: float = 1.0,
                    out: torch.Tensor | None = None, scale_out: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``x -> pack_int4(quantize_sym((x * s)(P1 (x) P2)))`` per token, one Triton program per token.

    Args:
        x: ``[M, n]`` (fp32/fp16/bf16), ``n = n1 * n2`` with ``n2`` even.
        p1: ``[n1, n1]`` or None; p2: ``[n2, n2]`` or None (at least one given or ``n`` taken as one row).
        diag: optional per-channel scale ``[n]``.
        clip_max, clip_min: LAC clipping ratios (``sigmoid`` of the learned logits).
        out, scale_out: optional preallocated outputs (``[M, n / 2]`` uint8, ``[M, 1]`` fp32).

    Returns:
        ``(packed [M, n / 2] uint8, scale [M, 1] fp32)``.
    """
    if x.ndim != 2:
        raise ValueError(f"kron_quant_pack: expected x of shape [M, n], got {tuple(x.shape)}")
    m, n = x.shape
    n1 = p1.shape[0] if p1 is not None else (n // p2.shape[0] if p2 is not None else 1)
    n2 = n // n1
    if n1 * n2 != n or (p2 is not None and p2.shape[0] != n2):
        raise ValueError(f"kron_quant_pack: factor sizes {n1} x {n2} do not match n = {n}")
    if n2 % 2:
        raise ValueError(f"kron_quant_pack: packing needs an even inner factor n2, got {n2}")
    triton, _ = _triton()

    kernel = _build_kernel()
    x = x.contiguous()
    out = torch.empty(m, n // 2, dtype=torch.uint8, device=x.device) if out is None else out
    scale = torch.empty(m, 1, dtype=torch.float32, device=x.device) if scale_out is None else scale_out
    if out.shape != (m, n // 2) or out.dtype != torch.uint8 or scale.shape != (m, 1) or scale.dtype != torch.float32:
        raise ValueError(f"kron_quant_pack: expected out [{m}, {n // 2}] uint8 and scale_out [{m}, 1] float32, got "
                         f"{tuple(out.shape)} {out.dtype} and {tuple(scale.shape)} {scale.dtype}")
    dummy = x
    bn1 = max(16, triton.next_power_of_2(n1))
    bn2 = max(16, triton.next_power_of_2(n2))
    kernel[(m,)](x, p1.contiguous() if p1 is not None else dummy, p2.contiguous() if p2 is not None else dummy,
                 diag.contiguous() if diag is not None else dummy, out, scale, n1, n2, x.stride(0), out.stride(0),
                 float(clip_max), float(clip_min), HAS_P1=p1 is not None, HAS_P2=p2 is not None,
                 HAS_DIAG=diag is not None, BLOCK_N1=bn1, BLOCK_N2=bn2, num_warps=4 if bn1 * bn2 <= 4096 else 8)
    return out, scale
