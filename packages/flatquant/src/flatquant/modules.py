"""Building blocks: learnable transforms (Sec. 3.1-3.2), quantizers with learnable clipping (Sec. 3.3), and
the quantized linear layer in its two states (calibration: fake quantization; deployed: int codes).

A :class:`Transform` computes ``x -> (x * s) (P1 (x) P2)`` online and, for the weights of the linear layers
it feeds, ``W -> (W / s) (P1 (x) P2)^{-T}``, so that ``(x P)(W P^{-T})^T = x W^T`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flatquant import functional as FQ

# ----------------------------------------------------------------------------- transform factors


class SVDFactor(nn.Module):
    """One factor ``P = U diag(sigma) V^T`` with ``U, V`` orthogonal (Sec. 3.2, "SVD parametrisation"), so
    ``P^{-T} = U diag(1/sigma) V^T`` needs no matrix inversion.

    As the official ``SVDSingleTransMatrix``: ``U = cayley(A_u)`` with the skew ``A_u`` built from the strict lower
    triangle of the free matrix ``a_u`` (torch's Cayley orthogonal parametrisation without trivialization), and
    ``a_u`` starts at a random orthogonal matrix (``get_init_weight``); same for ``V``; ``sigma`` starts at 1.
    """

    def __init__(self, n: int, generator: torch.Generator | None = None):
        super().__init__()
        self.a_u = nn.Parameter(FQ.random_orthogonal(n, generator, torch.float32))
        self.a_v = nn.Parameter(FQ.random_orthogonal(n, generator, torch.float32))
        self.sigma = nn.Parameter(torch.ones(n))

    def _uv(self) -> tuple[torch.Tensor, torch.Tensor]:
        # float64 so that P^{-T} = U diag(1/sigma) V^T holds to float64 precision (U, V exactly orthogonal)
        return FQ.cayley(self.a_u.double()), FQ.cayley(self.a_v.double())

    def matrix(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        u, v = self._uv()
        return ((u * self.sigma.double()) @ v.transpose(0, 1)).to(dtype or self.sigma.dtype)  # U diag(sigma) V^T

    def inverse_t(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        u, v = self._uv()
        return ((u / self.sigma.double()) @ v.transpose(0, 1)).to(dtype or self.sigma.dtype)  # U diag(1/sigma) V^T


class FixedFactor(nn.Module):
    """A fixed factor (a frozen learned factor, or a Hadamard rotation) with its inverse transpose."""

    def __init__(self, p: torch.Tensor, p_inv_t: torch.Tensor | None = None):
        super().__init__()
        if p_inv_t is None:
            p_inv_t = torch.linalg.inv(p.double()).transpose(0, 1).to(p.dtype)
        self.register_buffer("p", p.detach().clone())
        self.register_buffer("p_inv_t", p_inv_t.detach().clone())

    def matrix(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self.p if dtype is None else self.p.to(dtype)

    def inverse_t(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self.p_inv_t if dtype is None else self.p_inv_t.to(dtype)


class Transform(nn.Module):
    """An online invertible transform ``x -> (x * s) (P1 (x) P2)``.

    Args:
        n: channel count.
        kind: ``"svd"`` (learnable, FlatQuant), ``"hadamard"`` (fixed random Hadamard, QuaRot),
            ``"identity"`` (no matrix: per-channel scaling only, SmoothQuant).
        kron: Kronecker-factorise ``P`` with :func:`flatquant.functional.get_decompose_dim` (hidden and
            intermediate sizes); False gives a single ``[n, n]`` matrix (head_dim and num_heads transforms).
        diag: add a per-channel scale ``s`` (``--add_diag``).
        left: for a single matrix, act on the leading axis of ``x.view(n, -1)`` (the attention output's head
            axis, ``o_trans``) instead of the trailing one.
        name: the owning module's name, used in error messages.
    """

    def __init__(self, n: int, *, kind: str = "svd", kron: bool = True, diag: bool = False, left: bool = False,
                 generator: torch.Generator | None = None, name: str = ""):
        super().__init__()
        if kind not in ("svd", "hadamard", "identity"):
            raise ValueError(f"Transform: expected kind in ('svd', 'hadamard', 'identity'), got {kind!r}")
        self.n, self.kind, self.name, self.left = n, kind, name, left
        if kind == "identity":
            sizes: tuple[int, ...] = ()
        elif kron:
            try:
                sizes = FQ.get_decompose_dim(n)
            except ValueError as e:
                raise ValueError(f"{name or 'Transform'}: {e}") from None
        else:
            sizes = (n,)
        self.sizes = sizes
        factors = []
        for m in sizes:
            if kind == "svd":
                factors.append(SVDFactor(m, generator))
            else:
                h = FQ.random_hadamard(m, generator, torch.float64)  # orthogonal to float64 precision
                factors.append(FixedFactor(h, h))
        self.factors = nn.ModuleList(factors)
        self.diag = nn.Parameter(torch.ones(n)) if diag else None

    # (P1, P2) with P1 = None for single-matrix transforms
    def _pair(self, inverse_t: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        mats = [f.inverse_t() if inverse_t else f.matrix() for f in self.factors]
        if not mats:
            return None, None
        if len(mats) == 1:
            return (mats[0], None) if self.left else (None, mats[0])
        return mats[0], mats[1]

    def matrices(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(P1, P2)`` (None where a factor is absent)."""
        return self._pair(False)

    def inverse_t_matrices(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(P1^{-T}, P2^{-T})``."""
        return self._pair(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.diag is not None:
            x = x * self.diag.to(x.dtype)
        p1, p2 = self.matrices()
        return FQ.kronecker_matmul(x, p1, p2)

    def transform_weight(self, w: torch.Tensor) -> torch.Tensor:
        """``W -> (W / s) P^{-T}`` along the input dim of ``w [out, n]``."""
        if self.diag is not None:
            w = w / self.diag.to(w.dtype)
        p1, p2 = self.inverse_t_matrices()
        return FQ.kronecker_matmul(w, p1, p2)

    @torch.no_grad()
    def init_diag(self, act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float) -> None:
        """SmoothQuant-style init ``s = max|W|^(1-alpha) / max|X|^alpha`` (FlatQuant: alpha = 0.3)."""
        if self.diag is None:
            raise RuntimeError(f"{self.name or 'Transform'}: init_diag needs diag=True")
        self.diag.copy_(FQ.smooth_scales(act_absmax.float(), weight_absmax.float(), alpha))

    @torch.no_grad()
    def freeze(self) -> Transform:
        """Materialise the matrices (``to_eval_mode``): no parameters, no per-call Cayley solves."""
        # float64 copies: folding into the weights happens in float64; online use casts to the input dtype
        fixed = [FixedFactor(f.matrix(torch.float64).detach(), f.inverse_t(torch.float64).detach())
                 for f in self.factors]
        self.factors = nn.ModuleList(fixed)
        if self.diag is not None:
            self.diag.requires_grad_(False)
        return self

    def drop_diag(self) -> torch.Tensor | None:
        """Remove ``s`` (after it was merged into a preceding layer) and return it."""
        s = self.diag
        self.diag = None
        return None if s is None else s.detach()

    def extra_repr(self) -> str:
        return f"n={self.n}, kind={self.kind}, sizes={self.sizes}, diag={self.diag is not None}"


class HeadTransform:
    """Weight side of the attention-output transform: ``o_proj`` input channels are (head, head_dim), and the
    online ``P_o`` (across heads) together with ``P_v`` (folded into ``v_proj``) means ``o_proj`` gets
    ``W (P_o (x) P_v)^{-T}``. Plain object (not a module): it only points at transforms owned elsewhere."""

    def __init__(self, heads: Transform | None, head_dim: Transform | None, num_heads: int):
        self.heads, self.head_dim, self.num_heads = heads, head_dim, num_heads

    def transform_weight(self, w: torch.Tensor) -> torch.Tensor:
        p1 = self.heads.inverse_t_matrices()[0] if self.heads is not None else None
        p2 = self.head_dim.inverse_t_matrices()[1] if self.head_dim is not None else None
        if p1 is None and p2 is None:
            return w
        if p1 is None:
            p1 = torch.eye(self.num_heads, dtype=w.dtype, device=w.device)
        return FQ.kronecker_matmul(w, p1, p2)


class OutHeadTransform:
    """Output side of ``v_proj``: ``v_h -> v_h P_v`` per head, folded as ``W_h -> P_v^T W_h``, ``b_h -> b_h P_v``."""

    def __init__(self, t: Transform):
        self.t = t

    def transform_out(self, w: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        p = self.t.matrices()[1].to(w.dtype)
        d = p.shape[0]
        w = (p.transpose(0, 1) @ w.reshape(-1, d, w.shape[-1])).reshape(w.shape)  # (kvH, d, in)
        if b is not None:
            b = (b.reshape(-1, d) @ p.to(b.dtype)).reshape(b.shape)
        return w, b


# ----------------------------------------------------------------------------- quantizers


class ActQuantizer(nn.Module):
    """Per-token (last dim) activation quantizer with learnable activation clipping (LAC, Sec. 3.3): the
    token's max and min are scaled by ``sigmoid(c_max)``, ``sigmoid(c_min)`` (one scalar pair per quantizer)."""

    def __init__(self, bits: int, sym: bool, lac: bool = False, clip_init: float = 4.0):
        super().__init__()
        self.bits, self.sym = bits, sym
        if lac and bits < 16:
            self.clip_max = nn.Parameter(torch.full((1,), clip_init))
            self.clip_min = nn.Parameter(torch.full((1,), clip_init))
        else:
            self.clip_max = self.clip_min = None

    def ratios(self) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        if self.clip_max is None:
            return 1.0, 1.0
        return torch.sigmoid(self.clip_max), torch.sigmoid(self.clip_min)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 16:
            return x
        cmax, cmin = self.ratios()
        return FQ.fake_quantize(x, self.bits, self.sym, cmax, cmin)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, sym={self.sym}, lac={self.clip_max is not None}"


class WeightQuantizer(nn.Module):
    """Per-output-channel weight quantizer with learnable weight clipping (LWC, Sec. 3.3; official
    ``apply_wclip`` + ``WeightQuantizer``): :meth:`clip` clamps each row to ``[sigmoid(c_min) rowmin,
    sigmoid(c_max) rowmax]`` (logits ``[out, 1]``); :meth:`forward` then quantizes the clipped weight on the
    grid of its own range (``max(|min|, max) / 7`` for int4). The clip comes first, so the scale follows it."""

    def __init__(self, out_features: int, bits: int, sym: bool, lwc: bool = False, clip_init: float = 4.0):
        super().__init__()
        self.bits, self.sym = bits, sym
        if lwc and bits < 16:
            self.clip_max = nn.Parameter(torch.full((out_features, 1), clip_init))
            self.clip_min = nn.Parameter(torch.full((out_features, 1), clip_init))
        else:
            self.clip_max = self.clip_min = None

    def ratios(self) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        if self.clip_max is None:
            return 1.0, 1.0
        return torch.sigmoid(self.clip_max), torch.sigmoid(self.clip_min)

    def clip(self, w: torch.Tensor) -> torch.Tensor:
        """LWC: the row-clamped weight (identity without LWC or for unquantized weights)."""
        if self.bits >= 16 or self.clip_max is None:
            return w
        cmax, cmin = self.ratios()
        return FQ.clip_rows(w, cmax.to(w.dtype), cmin.to(w.dtype))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Fake-quantize an already clipped weight."""
        return FQ.fake_quantize_weight(w, self.bits, self.sym)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, sym={self.sym}, lwc={self.clip_max is not None}"


# ----------------------------------------------------------------------------- activations and linear


@dataclass
class QAct:
    """A per-token quantized activation: int8 codes ``[..., K]`` and float scales ``[..., 1]``."""

    codes: torch.Tensor
    scale: torch.Tensor


class InputQuantizer(nn.Module):
    """The online path in front of one or more linear layers: transform, then per-token quantization.

    ``quantizer`` is one :class:`ActQuantizer` (one quantization of the transformed input, shared by every linear
    it feeds) or a sequence of them, one per consumer linear (official ``FlatQuantizedLinear``: each quantized
    linear has its own activation quantizer with its own LAC pair, ``lac_scope="linear"``). The transform is
    computed once either way.

    Calibration: returns the fake-quantized float tensor (a tuple of them, one per quantizer, when there are
    several; :meth:`outputs` gives a fixed count). Deployed (:meth:`deploy`): returns a :class:`QAct` (int codes,
    computed by the fused Triton kernel on a GPU for symmetric int4, by its torch reference otherwise) per
    quantizer, or the transformed float tensor when activations are not quantized.
    """

    def __init__(self, transform: Transform | None, quantizer: ActQuantizer | list[ActQuantizer] | tuple):
        super().__init__()
        qs = list(quantizer) if isinstance(quantizer, list | tuple | nn.ModuleList) else [quantizer]
        if not qs or not all(isinstance(q, ActQuantizer) for q in qs):
            raise ValueError("InputQuantizer: quantizer: expected an ActQuantizer or a non-empty sequence of them, "
                             f"got {quantizer!r}")
        if len({(q.bits, q.sym) for q in qs}) != 1:
            raise ValueError("InputQuantizer: quantizer: expected quantizers of one bit width and symmetry (they "
                             f"quantize the same input), got {[(q.bits, q.sym) for q in qs]}")
        self.transform = transform
        self.quantizers = nn.ModuleList(qs)
        self.deployed = False
        self.backend = "auto"

    @property
    def quantizer(self) -> ActQuantizer:
        """The first (or only) activation quantizer."""
        return self.quantizers[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | QAct | tuple:
        ys = self._all(x)
        return ys[0] if len(ys) == 1 else tuple(ys)

    def outputs(self, x: torch.Tensor, n: int) -> tuple:
        """``n`` inputs for the ``n`` linears this path feeds, in their order: one per quantizer when each linear
        has its own (``lac_scope="linear"``), else the one shared quantized input ``n`` times."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"InputQuantizer.outputs: n: expected a positive int, got {n!r}")
        ys = self(x)  # through __call__, so hooks on this module see every call
        ys = ys if isinstance(ys, tuple) else (ys,)
        if len(ys) == 1:
            return ys * n
        if len(ys) != n:
            raise ValueError(f"InputQuantizer.outputs: n: expected {len(ys)} (one per quantizer) or a single shared "
                             f"quantizer, got n={n}")
        return tuple(ys)

    def _all(self, x: torch.Tensor) -> list:
        if self.deployed:
            return self._deployed_forward(x)
        if self.transform is not None:
            x = self.transform(x)
        return [q(x) for q in self.quantizers]

    @torch.no_grad()
    def deploy(self) -> None:
        if self.transform is not None:
            self.transform.freeze()
        self.deployed = True

    def _deployed_forward(self, x: torch.Tensor) -> list:
        from flatquant import kernels

        q0 = self.quantizer
        t = self.transform
        p1, p2 = t.matrices() if t is not None else (None, None)
        diag = t.diag if t is not None else None
        if q0.bits >= 16:
            if diag is not None:
                x = x * diag
            return [FQ.kronecker_matmul(x, p1, p2)]
        if not q0.sym:
            raise NotImplementedError("deployed integer matmul supports symmetric activations only (the paper's "
                                      f"W4A4 kernel); expected a_sym=True, got asymmetric {q0.bits}-bit activations")
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        fused = q0.bits == 4 and shape[-1] % 2 == 0 and kernels.use_triton(self.backend, x2)
        y = None if fused else kernels.kron_reference(x2, p1, p2, diag)  # transform once, quantize per consumer
        out = []
        for q in self.quantizers:
            cmax, cmin = (float(r) for r in q.ratios())
            if fused:  # one fused program per consumer (each with its own LAC pair)
                packed, scale = kernels.kron_quant_pack(x2, p1, p2, diag=diag, clip_max=cmax, clip_min=cmin)
                codes = FQ.unpack_int4(packed)
            else:
                codes, scale = FQ.quantize_sym(y, q.bits, cmax, cmin)
            out.append(QAct(codes.reshape(shape), scale.reshape(*shape[:-1], 1)))
        return out


class QuantLinear(nn.Module):
    """A linear layer whose weight is seen through transforms and quantized per output channel.

    Calibration: ``y = x Q(T(W))^T + b`` with ``T`` the weight side of the transforms feeding it (a list
    of objects with ``transform_weight``; and ``transform_out`` for output-side ones) and ``Q`` the LWC
    fake quantizer. Deployed (:meth:`deploy`): ``T`` is folded in, the weight is stored as integer codes
    (int4 packed two per byte when ``w_bits == 4``) with per-channel scales, and a :class:`QAct` input runs an
    integer matmul (``torch._int_mm`` on a GPU) followed by ``y = acc * s_x * s_w + b``.
    """

    def __init__(self, linear: nn.Linear, quantizer: WeightQuantizer, name: str = ""):
        super().__init__()
        self.in_features, self.out_features, self.name = linear.in_features, linear.out_features, name
        self.weight = nn.Parameter(linear.weight.detach().clone(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.quantizer = quantizer
        # not registered: these point at transforms owned by the attention / MLP wrappers
        self.w_in: list = []
        self.w_out: list = []
        self.deployed = False
        self.w_bits = quantizer.bits
        self.fixed_weight: torch.Tensor | None = None  # a GPTQ result: used as is (already quantized)
        self.fixed_scale: torch.Tensor | None = None

    def effective_weight(self, clip: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``T(W)`` and the (possibly transformed) bias, before weight quantization.

        The official order: input-side transforms, then LWC (``clip=True``), then output-side transforms
        (``v_proj``'s ``P_v``); the quantization grid is computed from the result."""
        w, b = self.weight, self.bias
        for t in self.w_in:
            w = t.transform_weight(w)
        if clip:
            w = self.quantizer.clip(w)
        for t in self.w_out:
            w, b = t.transform_out(w, b)
        return w, b

    def forward(self, x: torch.Tensor | QAct) -> torch.Tensor:
        if self.deployed:
            return self._deployed_forward(x)
        if isinstance(x, QAct):
            raise TypeError(f"{self.name}: a QAct input needs a deployed layer; call flatquant.reparameterize first")
        w, b = self.effective_weight()
        w = self.fixed_weight if self.fixed_weight is not None else self.quantizer(w)
        return F.linear(x, w.to(x.dtype), None if b is None else b.to(x.dtype))

    @torch.no_grad()
    def deploy(self, dtype: torch.dtype = torch.float32) -> None:
        """Fold the transforms into the weight (in float64), quantize it, and store the integer codes."""
        w64, b = self._folded_weight64()
        bits = self.quantizer.bits
        del self.weight
        if bits >= 16:
            self.register_buffer("weight", w64.to(dtype))
            self.w_scale = None
        else:
            if not self.quantizer.sym:
                raise NotImplementedError(f"{self.name}: deployment stores symmetric weights only; got w_sym=False")
            if self.fixed_weight is not None:  # GPTQ: its own codes on its own grid
                scale = self.fixed_scale.double()
                codes = torch.clamp(torch.round(self.fixed_weight.double() / scale), -(2 ** (bits - 1)),
                                    2 ** (bits - 1) - 1).to(torch.int8)
            else:
                codes, scale = FQ.quantize_weight_sym(w64, bits)
            if bits == 4 and self.in_features % 2 == 0:
                self.register_buffer("w_packed", FQ.pack_int4(codes))
            else:
                self.register_buffer("w_codes", codes)
            self.register_buffer("w_scale", scale.to(dtype))
        if b is not None:
            del self.bias
            self.register_buffer("bias", b.to(dtype))
        self.quantizer = WeightQuantizer(self.out_features, bits, self.quantizer.sym, lwc=False)
        self.w_in, self.w_out, self.fixed_weight, self.fixed_scale = [], [], None, None
        self.deployed = True

    @torch.no_grad()
    def scale_rows_(self, s: torch.Tensor) -> None:
        """Multiply the deployed layer's outputs by ``s`` (a following per-channel scale merged into this
        layer's rows): per-channel symmetric codes are unchanged, only the row scales (and bias) move."""
        if not self.deployed:
            raise RuntimeError(f"{self.name}: scale_rows_ needs a deployed layer")
        s = s.reshape(-1, 1)
        if self.w_scale is None:
            self.weight.mul_(s.to(self.weight.dtype))
        else:
            self.w_scale.mul_(s.to(self.w_scale.dtype))
        if self.bias is not None:
            self.bias.mul_(s.reshape(-1).to(self.bias.dtype))

    def _folded_weight64(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        # transforms in float64 so that folding adds no rounding (the official code does the same)
        w, b = self.weight.double(), None if self.bias is None else self.bias.double()
        for t in self.w_in:
            w = _double_call(t, "transform_weight", w)
        w = self.quantizer.clip(w)  # LWC before the output-side transform (official reparameterize)
        for t in self.w_out:
            w, b = _double_call(t, "transform_out", w, b)
        return w, b

    def weight_codes(self) -> torch.Tensor:
        """The int8 weight codes ``[out, in]`` of a deployed layer."""
        if hasattr(self, "w_packed"):
            return FQ.unpack_int4(self.w_packed)
        return self.w_codes

    def dequantized_weight(self) -> torch.Tensor:
        if not self.deployed:
            raise RuntimeError(f"{self.name}: not deployed")
        if self.w_scale is None:
            return self.weight
        return self.weight_codes().float() * self.w_scale

    def _deployed_forward(self, x: torch.Tensor | QAct) -> torch.Tensor:
        if isinstance(x, QAct):
            if self.w_scale is None:
                raise TypeError(f"{self.name}: int activations need int weights (w_bits < 16)")
            shape = x.codes.shape
            acc = FQ.int_matmul(x.codes.reshape(-1, shape[-1]), self.weight_codes())  # (M, out) int32
            y = acc.to(x.scale.dtype) * x.scale.reshape(-1, 1) * self.w_scale.reshape(1, -1).to(x.scale.dtype)
            y = y.reshape(*shape[:-1], self.out_features)
        else:
            y = F.linear(x, self.dequantized_weight().to(x.dtype))
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, w_bits={self.w_bits}, deployed={self.deployed}"


def _double_call(t, method: str, *args):
    """Call a weight transform on float64 arguments (``kronecker_matmul`` casts the matrices to them)."""
    return getattr(t, method)(*args)


# ----------------------------------------------------------------------------- per-method factories

# The slots of a block: where an online transform sits and whether it may carry a per-channel scale.
DIAG_SLOTS = ("qkv", "upgate", "down")


def make_transform(cfg, n: int, slot: str, generator: torch.Generator, name: str) -> Transform | None:
    """The transform of one slot for ``cfg.method``.

    Slots: ``"qkv"``, ``"upgate"``, ``"down"`` (Kronecker over hidden / intermediate channels, with a per-channel
    scale), ``"k"``, ``"v"`` (``head_dim x head_dim``), ``"o"`` (``num_heads x num_heads``, across heads).

    RTN has none; SmoothQuant has only the per-channel scales (fixed from activation statistics); QuaRot has
    fixed random Hadamard matrices (Kronecker products of Hadamard factors are Hadamard); FlatQuant learns
    SVD-parametrised factors and (``add_diag``) the scales.
    """
    kron = slot in DIAG_SLOTS
    left = slot == "o"
    if cfg.method == "rtn":
        return None
    if cfg.method == "smoothquant":
        if slot not in DIAG_SLOTS:
            return None
        t = Transform(n, kind="identity", diag=True, name=name)
        t.diag.requires_grad_(False)
        return t
    if cfg.method == "quarot":
        return Transform(n, kind="hadamard", kron=kron, left=left, generator=generator, name=name)
    return Transform(n, kind="svd", kron=kron, left=left, diag=cfg.add_diag and kron, generator=generator, name=name)


def make_act_quantizer(cfg, kind: str = "a") -> ActQuantizer:
    """Per-token quantizer of linear inputs (``kind="a"``) or of the K / V cache (``"k"``, ``"v"``)."""
    if kind not in ("a", "k", "v"):
        raise ValueError(f"make_act_quantizer: kind: expected 'a', 'k' or 'v', got {kind!r}")
    bits = {"a": cfg.a_bits, "k": cfg.k_bits, "v": cfg.v_bits}[kind]
    sym = {"a": cfg.a_sym, "k": cfg.k_sym, "v": cfg.v_sym}[kind]
    return ActQuantizer(bits, sym, lac=cfg.method == "flatquant" and cfg.lac, clip_init=cfg.clip_init)


def make_input_quantizers(cfg, consumers: int) -> list[ActQuantizer]:
    """The activation quantizers of an online path feeding ``consumers`` linear layers: one per linear with
    learnable activation clipping and ``lac_scope="linear"`` (the official code), else one shared quantizer (without
    LAC, per-linear quantizers would all be identical)."""
    if isinstance(consumers, bool) or not isinstance(consumers, int) or consumers < 1:
        raise ValueError(f"make_input_quantizers: consumers: expected a positive int, got {consumers!r}")
    per_linear = cfg.method == "flatquant" and cfg.lac and cfg.a_bits < 16 and cfg.lac_scope == "linear"
    return [make_act_quantizer(cfg) for _ in range(consumers if per_linear else 1)]


def make_linear(cfg, linear: nn.Linear, name: str) -> QuantLinear:
    wq = WeightQuantizer(linear.out_features, cfg.w_bits, cfg.w_sym, lwc=cfg.method == "flatquant" and cfg.lwc,
                         clip_init=cfg.clip_init)
    return QuantLinear(linear, wq, name=name).to(linear.weight.device)
