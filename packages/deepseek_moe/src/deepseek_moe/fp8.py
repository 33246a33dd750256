"""FP8 fine-grained quantization (DeepSeek-V3 Sec. 3.3): e4m3 values with one fp32 scale per 1x128 activation
tile and per 128x128 weight block, the block-scaled GEMM, an FP8 linear layer, and checkpoint dequantization.

Quantization itself is the shared ``papercommon.kernels.fp8_quantize_blockwise`` (scale = amax / 448, or the
next power of two with ``scale_fmt="ue8m0"``). The checkpoint convention is ``w ~= w_fp8 * weight_scale_inv``
per 128x128 block (the name is historical: it *multiplies* on dequantization).

Example:
    >>> w = torch.randn(256, 512)
    >>> w8, s = weight_quant(w)                       # e4m3 [256, 512], fp32 [2, 4]
    >>> x8, xs = act_quant(torch.randn(4, 512))       # e4m3 [4, 512], fp32 [4, 4]
    >>> y = fp8_gemm(x8, xs, w8, s, backend="torch")  # [4, 256]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

E4M3_MAX = 448.0


def _pk():
    import papercommon.kernels as K

    return K


def _check_finite(name: str, x: Tensor) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite values (e4m3 has no inf and NaN would poison the block scale), "
                         f"got {int((~torch.isfinite(x)).sum())} non-finite value(s) in shape {tuple(x.shape)}")


def act_quant(x: Tensor, block: int = 128, scale_fmt: str | None = None) -> tuple[Tensor, Tensor]:
    """Quantize activations per 1 x ``block`` tile: returns e4m3 [..., K] and fp32 scales [..., K/block]."""
    if x.shape[-1] % block:
        raise ValueError(f"act_quant: the last dimension must be a multiple of block={block}, got {x.shape[-1]}")
    if scale_fmt not in (None, "ue8m0"):
        raise ValueError(f"act_quant: scale_fmt expected None or 'ue8m0', got {scale_fmt!r}")
    if not x.is_cuda:  # no host sync on the GPU path
        _check_finite("act_quant", x)
    return _pk().fp8_quantize_blockwise(x.contiguous(), block=(1, block), pow2_scale=scale_fmt == "ue8m0")


def weight_quant(w: Tensor, block: int = 128, scale_fmt: str | None = None) -> tuple[Tensor, Tensor]:
    """Quantize a 2-D weight per ``block`` x ``block`` block (ragged edges allowed): e4m3 [N, K], fp32 [N/b, K/b]."""
    if w.dim() != 2:
        raise ValueError(f"weight_quant: expected a 2-D weight, got shape {tuple(w.shape)}")
    _check_finite("weight_quant", w)
    return _pk().fp8_quantize_blockwise(w.contiguous(), block=(block, block), pow2_scale=scale_fmt == "ue8m0")


def weight_dequant(w: Tensor, scale: Tensor, block: int = 128, dtype: torch.dtype = torch.float32) -> Tensor:
    """``w * scale`` per ``block`` x ``block`` block, ragged edges allowed (official ``weight_dequant``).

    Args:
        w: [N, K] e4m3 (or any dtype); scale: [ceil(N/block), ceil(K/block)] fp32 (``weight_scale_inv``).
    """
    if w.dim() != 2:
        raise ValueError(f"weight_dequant: expected a 2-D weight, got shape {tuple(w.shape)}")
    N, K = w.shape
    want = (-(-N // block), -(-K // block))
    if tuple(scale.shape) != want:
        raise ValueError(f"weight_dequant: weight {tuple(w.shape)} with block {block} needs scales of shape {want}, "
                         f"got {tuple(scale.shape)}")
    s = scale.float().repeat_interleave(block, 0)[:N].repeat_interleave(block, 1)[:, :K]
    return (w.float() * s).to(dtype)


def act_dequant(x: Tensor, scale: Tensor, block: int = 128, dtype: torch.dtype = torch.float32) -> Tensor:
    return (x.float().unflatten(-1, (-1, block)) * scale.float()[..., None]).flatten(-2).to(dtype)


def fp8_gemm_reference(a: Tensor, a_s: Tensor, b: Tensor, b_s: Tensor, *, block: int = 128,
                       out_dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """``dequant(a) @ dequant(b)^T`` in fp32 (pure torch, CPU-capable): the kernel's reference."""
    return (act_dequant(a, a_s, block) @ weight_dequant(b, b_s, block).t()).to(out_dtype)


def _check_gemm(a: Tensor, a_s: Tensor, b: Tensor, b_s: Tensor, block: int) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"fp8_gemm: expected a [M, K] and b [N, K], got {tuple(a.shape)} and {tuple(b.shape)}")
    M, K = a.shape
    N = b.shape[0]
    if K % block:
        raise ValueError(f"fp8_gemm: K must be a multiple of block={block}, got K={K}")
    if tuple(a_s.shape) != (M, K // block):
        raise ValueError(f"fp8_gemm: a_s expected shape {(M, K // block)}, got {tuple(a_s.shape)}")
    if tuple(b_s.shape) != (-(-N // block), K // block):
        raise ValueError(f"fp8_gemm: b_s expected shape {(-(-N // block), K // block)}, got {tuple(b_s.shape)}")
    for name, t in (("a", a), ("b", b)):
        if t.dtype != torch.float8_e4m3fn:
            raise ValueError(f"fp8_gemm: {name} expected dtype float8_e4m3fn, got {t.dtype}")


def fp8_gemm(a: Tensor, a_s: Tensor, b: Tensor, b_s: Tensor, *, block: int = 128, backend: str = "auto",
             out_dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """Block-scaled FP8 GEMM ``C = (a * a_s) @ (b * b_s)^T`` (official ``fp8_gemm``).

    Args:
        a: [..., K] e4m3 activations; a_s: [..., K/block] fp32 scales (from :func:`act_quant`).
        b: [N, K] e4m3 weight; b_s: [ceil(N/block), K/block] fp32 scales (from :func:`weight_quant`).
        backend: "auto" (Triton on CUDA, torch otherwise), "triton" or "torch".

    Returns:
        [..., N] in ``out_dtype``.
    """
    lead = a.shape[:-1]
    a2, as2 = a.reshape(-1, a.shape[-1]), a_s.reshape(-1, a_s.shape[-1])
    _check_gemm(a2, as2, b, b_s, block)
    from papercommon.kernels import resolve_backend

    be = resolve_backend(backend, a2, b)
    if be == "triton":
        from deepseek_moe.kernels import fp8_gemm_triton

        c = fp8_gemm_triton(a2.contiguous(), as2.float().contiguous(), b.contiguous(), b_s.float().contiguous(),
                            block=block, out_dtype=out_dtype)
    else:
        c = fp8_gemm_reference(a2, as2, b, b_s, block=block, out_dtype=out_dtype)
    return c.reshape(*lead, b.shape[0])


class FP8Linear(nn.Module):
    """Linear layer with an e4m3 weight and 128x128 block scales (``weight`` + ``weight_scale_inv``).

    ``gemm_impl="fp8"`` quantizes the input per 1x128 tile and runs :func:`fp8_gemm` (the paper's forward GEMM,
    Sec. 3.3); ``"bf16"`` dequantizes the weight and runs a regular matmul (official ``gemm_impl``).
    Inference only: the weight is not trainable.
    """

    def __init__(self, in_features: int, out_features: int, *, block: int = 128, scale_fmt: str | None = None,
                 gemm_impl: str = "fp8", device=None):
        super().__init__()
        if gemm_impl not in ("fp8", "bf16"):
            raise ValueError(f"FP8Linear.gemm_impl: expected 'fp8' or 'bf16', got {gemm_impl!r}")
        if gemm_impl == "fp8" and in_features % block:
            raise ValueError(f"FP8Linear: in_features={in_features} must be a multiple of block={block} for fp8 GEMM")
        self.in_features, self.out_features = in_features, out_features
        self.block, self.scale_fmt, self.gemm_impl = block, scale_fmt, gemm_impl
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.float8_e4m3fn,
                                                   device=device))
        self.register_buffer("weight_scale_inv", torch.ones(-(-out_features // block), -(-in_features // block),
                                                            device=device))

    @classmethod
    def from_linear(cls, lin: nn.Linear, *, block: int = 128, scale_fmt: str | None = None,
                    gemm_impl: str = "fp8") -> FP8Linear:
        if lin.bias is not None:
            raise ValueError("FP8Linear.from_linear: expected a bias-free nn.Linear")
        m = cls(lin.in_features, lin.out_features, block=block, scale_fmt=scale_fmt, gemm_impl=gemm_impl,
                device=lin.weight.device)
        m.weight, m.weight_scale_inv = weight_quant(lin.weight.detach(), block, scale_fmt)
        return m

    def forward(self, x: Tensor) -> Tensor:
        if self.gemm_impl == "bf16":
            return F.linear(x, weight_dequant(self.weight, self.weight_scale_inv, self.block, x.dtype))
        xq, xs = act_quant(x, self.block, self.scale_fmt)
        return fp8_gemm(xq, xs, self.weight, self.weight_scale_inv, block=self.block, out_dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, block={self.block}, gemm_impl={self.gemm_impl}"


class FP8Experts(nn.Module):
    """Routed experts stored in e4m3 with one fp32 scale per 128x128 block of each expert's matrices.

    The layout is the published checkpoint's, stacked over experts: ``gate_proj`` / ``up_proj`` [E, I, D],
    ``down_proj`` [E, D, I] (e4m3) and ``*_scale_inv`` [E, ceil(rows/128), ceil(cols/128)] (fp32). The forward
    sorts the (token, expert) pairs by expert as :class:`~deepseek_moe.modules.moe.Experts` does, and
    dequantizes only the experts that received tokens, one at a time (at most one expert's weights in the
    compute dtype exist at once). Inference only.
    """

    def __init__(self, n_experts: int, dim: int, inter_dim: int, *, block: int = 128, scale_fmt: str | None = None,
                 device=None):
        super().__init__()
        self.block, self.scale_fmt = block, scale_fmt
        self.n_experts, self.dim, self.inter_dim = n_experts, dim, inter_dim
        for name, (rows, cols) in (("gate_proj", (inter_dim, dim)), ("up_proj", (inter_dim, dim)),
                                   ("down_proj", (dim, inter_dim))):
            self.register_buffer(name, torch.zeros(n_experts, rows, cols, dtype=torch.float8_e4m3fn, device=device))
            self.register_buffer(name + "_scale_inv", torch.ones(n_experts, -(-rows // block), -(-cols // block),
                                                                 device=device))

    @classmethod
    def from_experts(cls, experts: nn.Module, *, block: int = 128, scale_fmt: str | None = None) -> FP8Experts:
        """Quantize an :class:`~deepseek_moe.modules.moe.Experts` (``gate_up_proj`` [E, 2I, D], ``down_proj``)."""
        gu, down = experts.gate_up_proj.detach(), experts.down_proj.detach()
        E, two_i, D = gu.shape
        m = cls(E, D, two_i // 2, block=block, scale_fmt=scale_fmt, device=gu.device)
        for e in range(E):
            g, u = gu[e].chunk(2)
            for name, w in (("gate_proj", g), ("up_proj", u), ("down_proj", down[e])):
                q, s = weight_quant(w, block, scale_fmt)
                getattr(m, name)[e] = q
                getattr(m, name + "_scale_inv")[e] = s
        return m

    def expert_weight(self, name: str, e: int, dtype: torch.dtype) -> Tensor:
        """Expert ``e``'s ``name`` matrix dequantized into ``dtype``."""
        return weight_dequant(getattr(self, name)[e], getattr(self, name + "_scale_inv")[e], self.block, dtype)

    def forward(self, x: Tensor, weights: Tensor, idx: Tensor) -> Tensor:
        N, K = idx.shape
        flat = idx.reshape(-1)
        order = flat.argsort(stable=True)
        counts = torch.bincount(flat, minlength=self.n_experts).tolist()
        xs = x[order // K]
        h = xs.new_empty(N * K, self.dim)
        start = 0
        for e, n in enumerate(counts):
            if not n:
                continue
            seg = slice(start, start + n)
            g = F.linear(xs[seg], self.expert_weight("gate_proj", e, x.dtype))
            u = F.linear(xs[seg], self.expert_weight("up_proj", e, x.dtype))
            h[seg] = F.linear(F.silu(g) * u, self.expert_weight("down_proj", e, x.dtype))
            start += n
        h = h[order.argsort()].view(N, K, -1)
        return torch.bmm(weights.to(h.dtype)[:, None, :], h).squeeze(1)

    def extra_repr(self) -> str:
        return f"experts={self.n_experts}, dim={self.dim}, inter_dim={self.inter_dim}, block={self.block}"


def quantize_model_fp8(model: nn.Module, *, block: int = 128, scale_fmt: str | None = None,
                       gemm_impl: str = "fp8", experts: bool = True) -> nn.Module:
    """Replace the Transformer's linear layers by :class:`FP8Linear` in place (the V3 FP8 set: attention
    projections, dense/shared FFNs and MTP ``eh_proj``; embedding, output head, gate and norms stay high
    precision as in Sec. 3.3.1), and, with ``experts=True``, the routed experts by :class:`FP8Experts`
    (they hold most of V3's weights).
    """
    from deepseek_moe.modules.moe import Experts

    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            full = f"{name}.{cname}" if name else cname
            if isinstance(child, nn.Linear) and full != "lm_head" and child.bias is None:
                setattr(mod, cname, FP8Linear.from_linear(child, block=block, scale_fmt=scale_fmt,
                                                          gemm_impl=gemm_impl))
            elif experts and isinstance(child, Experts):
                setattr(mod, cname, FP8Experts.from_experts(child, block=block, scale_fmt=scale_fmt))
    return model


def module_bytes(module: nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (FP8 weights count one byte per value)."""
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
