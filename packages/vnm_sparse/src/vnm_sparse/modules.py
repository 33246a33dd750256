"""Model-level V:N:M: calibration, one-shot pruning, the compressed ``VNMLinear`` and SR-STE fine-tuning.

* :func:`collect_act_norms` gathers input-feature norms for RIA from calibration batches;
* :func:`compute_masks` / :func:`prune_` choose V:N:M masks for every prunable weight (one-shot);
* :func:`sparsify_` swaps ``nn.Linear`` for :class:`VNMLinear`, which stores values, column indices and
  2:4 positions and multiplies with the Triton kernel (or its torch reference);
* :func:`attach_sr_ste_` / :func:`refresh_masks_` / :func:`finalize_` run SR-STE sparse fine-tuning
  (the paper's recipe for vision Transformers, Sec. 3.2).

Prunable weights are ``nn.Linear.weight`` and ``nn.MultiheadAttention.in_proj_weight`` (the packed
q/k/v projection of torchvision's ViT).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from vnm_sparse.config import VNMConfig
from vnm_sparse.functional import VNMPacked, importance, pack_vnm, storage_bytes, unpack_vnm, vnm_mask
from vnm_sparse.kernels import vnm_matmul

FilterFn = Callable[[str, nn.Module], bool]
_HEAD = re.compile(r"(^|\.)(lm_head|heads?|classifier|head\.\w+)$")


def default_filter(name: str, module: nn.Module) -> bool:
    """Prune every linear layer except the output head (``lm_head``, ``heads``, ``classifier``)."""
    return not _HEAD.search(name) and "embed" not in name


def prunable_weights(model: nn.Module, filter_fn: FilterFn | None = None) -> dict[str, tuple[nn.Module, str]]:
    """``{name: (module, parameter name)}`` of the weights to prune, in module order.

    ``name`` is the module's name for ``nn.Linear`` and ``<mha name>.in_proj_weight`` for attention.
    """
    filter_fn = filter_fn or default_filter
    out: dict[str, tuple[nn.Module, str]] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and filter_fn(name, mod):
            out[name] = (mod, "weight")
        elif isinstance(mod, nn.MultiheadAttention) and mod.in_proj_weight is not None and filter_fn(name, mod):
            out[f"{name}.in_proj_weight"] = (mod, "in_proj_weight")
    if not out:
        raise ValueError("model: expected at least one prunable nn.Linear / nn.MultiheadAttention after filter_fn, "
                         "found none")
    return out


def _get_weight(mod: nn.Module, pname: str) -> Tensor:
    return getattr(mod, pname)


@torch.no_grad()
def collect_act_norms(model: nn.Module, batches: Iterable, filter_fn: FilterFn | None = None,
                      forward: Callable[[nn.Module, object], object] | None = None) -> dict[str, Tensor]:
    """L2 norm of every input feature of each prunable layer over calibration tokens (for RIA).

    Args:
        model: the model.
        batches: calibration inputs, each passed as ``model(batch)`` (or ``forward(model, batch)``).
        filter_fn: which layers (see :func:`prunable_weights`).
        forward: how to run a batch (default ``model(batch)``).

    Returns:
        ``{name: [in_features]}`` matching :func:`prunable_weights`.
    """
    targets = prunable_weights(model, filter_fn)
    sq: dict[str, Tensor] = {}
    hooks = []

    def make_hook(key: str):
        def hook(mod, args, kwargs):
            x = args[0] if args else kwargs.get("query", kwargs.get("input"))
            x = x.detach().float().reshape(-1, x.shape[-1])
            sq[key] = sq.get(key, 0) + (x * x).sum(0)
        return hook

    for key, (mod, _) in targets.items():
        hooks.append(mod.register_forward_pre_hook(make_hook(key), with_kwargs=True))
    try:
        model_was_training = model.training
        model.eval()
        n = 0
        for batch in batches:
            forward(model, batch) if forward else model(batch)
            n += 1
        model.train(model_was_training)
    finally:
        for h in hooks:
            h.remove()
    if n == 0:
        raise ValueError("batches: expected at least one calibration batch, given none")
    missing = [k for k in targets if k not in sq]
    if missing:
        raise RuntimeError(f"calibration never reached layers {missing[:5]} (are they used in forward?)")
    return {k: v.sqrt() for k, v in sq.items()}


@torch.no_grad()
def compute_masks(model: nn.Module, config: VNMConfig, act_norms: dict[str, Tensor] | None = None,
                  filter_fn: FilterFn | None = None) -> dict[str, Tensor]:
    """V:N:M masks for every prunable weight (current values; nothing is modified).

    Paper: Sec. 2; magnitude for ViTs, RIA (``config.score == "ria"``, needs ``act_norms``) for LLMs.
    """
    masks = {}
    for key, (mod, pname) in prunable_weights(model, filter_fn).items():
        norm = None
        if config.score == "ria":
            if act_norms is None or key not in act_norms:
                raise ValueError(f"act_norms: expected norms for {key!r} with score='ria' "
                                 "(see collect_act_norms), given none")
            norm = act_norms[key]
        masks[key] = vnm_mask(_get_weight(mod, pname), config.v, config.n, config.m, score=config.score,
                              act_norm=norm, exact=config.exact, pad=config.pad, alpha=config.ria_alpha)
    return masks


@torch.no_grad()
def prune_(model: nn.Module, config: VNMConfig, act_norms: dict[str, Tensor] | None = None,
           filter_fn: FilterFn | None = None, masks: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """One-shot V:N:M pruning in place (weights stay dense with zeros). Returns the masks used."""
    targets = prunable_weights(model, filter_fn)
    masks = masks if masks is not None else compute_masks(model, config, act_norms, filter_fn)
    for key, (mod, pname) in targets.items():
        w = _get_weight(mod, pname)
        w.mul_(masks[key].to(w.device, w.dtype))
    return masks


# ----------------------------------------------------------------------------------------------
# compressed linear layer
# ----------------------------------------------------------------------------------------------

class VNMLinear(nn.Module):
    """A linear layer stored in V:N:M compressed form.

    Buffers: ``values`` [R, G, 2], ``col_idx`` [RB, G, 4] (uint8), ``meta`` [R, G] (uint8), ``bias``.
    The forward pass calls :func:`vnm_sparse.kernels.vnm_matmul` (Triton on CUDA, torch otherwise).

    Example:
        >>> lin = nn.Linear(80, 64)
        >>> sp = VNMLinear.from_linear(lin, VNMConfig(v=16, m=5))
        >>> sp(torch.randn(3, 80)).shape
        torch.Size([3, 64])
    """

    def __init__(self, packed: VNMPacked, bias: Tensor | None = None, backend: str = "auto"):
        super().__init__()
        self.in_features, self.out_features = packed.shape[1], packed.shape[0]
        self.v, self.m = packed.v, packed.m
        self.backend = backend
        self.register_buffer("values", packed.values)
        self.register_buffer("col_idx", packed.col_idx)
        self.register_buffer("meta", packed.meta)
        self.register_buffer("bias", bias)

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear, config: VNMConfig, mask: Tensor | None = None,
                    act_norm: Tensor | None = None, backend: str = "auto") -> VNMLinear:
        """Compress ``linear`` with ``mask`` (computed from ``config`` when not given)."""
        w = linear.weight.detach()
        if mask is None:
            mask = vnm_mask(w, config.v, config.n, config.m, score=config.score, act_norm=act_norm,
                            exact=config.exact, pad=config.pad, alpha=config.ria_alpha)
        packed = pack_vnm(w, mask, config.v, config.m)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        return cls(packed, bias, backend)

    @property
    def packed(self) -> VNMPacked:
        return VNMPacked(self.values, self.col_idx, self.meta, (self.out_features, self.in_features), self.v, self.m)

    def to_dense(self) -> Tensor:
        """The dense [out, in] weight with zeros where pruned."""
        return unpack_vnm(self.packed)

    @property
    def weight(self) -> Tensor:  # read-only dense view, for code that inspects .weight
        return self.to_dense()

    def storage_bytes(self) -> dict[str, int]:
        """Exact bytes: the stored buffers and the dense weight they replace (bias excluded)."""
        p = self.packed
        return {"stored": p.nbytes, "packed": p.packed_nbytes,
                "dense": self.out_features * self.in_features * self.values.element_size()}

    def forward(self, x: Tensor) -> Tensor:
        return vnm_matmul(x, self.packed, self.bias, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, pattern={self.v}:2:{self.m}, "
                f"backend={self.backend}")


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@torch.no_grad()
def sparsify_(model: nn.Module, config: VNMConfig, filter_fn: FilterFn | None = None,
              act_norms: dict[str, Tensor] | None = None, masks: dict[str, Tensor] | None = None,
              backend: str = "auto") -> nn.Module:
    """Replace prunable ``nn.Linear`` layers by :class:`VNMLinear` in place.

    Attention modules that read ``out_proj.weight`` directly (``nn.MultiheadAttention``) keep their
    layers; prune those with :func:`prune_`.

    Args:
        model: the model (modified in place and returned).
        config: the pattern and score.
        filter_fn: ``(name, module) -> bool`` choosing layers (default :func:`default_filter`).
        act_norms: calibration norms for RIA (:func:`collect_act_norms`).
        masks: precomputed masks by layer name (e.g. after fine-tuning), instead of recomputing.
        backend: the matmul backend of every new layer.

    Paper: Sec. 2 (V:N:M storage: values, column indices, 2:4 metadata).
    """
    mha_children = {f"{n}.{c}" if n else c for n, mod in model.named_modules() if isinstance(mod, nn.MultiheadAttention)
                    for c, _ in mod.named_children()}
    base = filter_fn or default_filter
    flt = lambda name, mod: isinstance(mod, nn.Linear) and name not in mha_children and base(name, mod)
    targets = prunable_weights(model, flt)
    # All-or-nothing: build every replacement first (masks, packing: where bad input fails), then swap;
    # a failure while swapping puts the layers already swapped back, so the model is left as it was.
    new = {}
    for key, (mod, _) in targets.items():
        mask = masks.get(key) if masks is not None else None
        norm = act_norms.get(key) if act_norms is not None else None
        new[key] = VNMLinear.from_linear(mod, config, mask=mask, act_norm=norm, backend=backend)
    done = []
    try:
        for key, layer in new.items():
            _set_module(model, key, layer)
            done.append(key)
    except BaseException:
        for key in reversed(done):
            _set_module(model, key, targets[key][0])
        raise
    return model


def model_storage(model: nn.Module) -> dict[str, int]:
    """Exact bytes of the sparsified layers, summed: stored, bit-packed and the dense equivalent."""
    tot = {"stored": 0, "packed": 0, "dense": 0, "layers": 0}
    for mod in model.modules():
        if isinstance(mod, VNMLinear):
            for k, v in mod.storage_bytes().items():
                tot[k] += v
            tot["layers"] += 1
    return tot


def pattern_storage_table(shape: tuple[int, int], patterns: Iterable[tuple[int, int]],
                          dtype: torch.dtype = torch.float16) -> list[dict]:
    """Compressed-vs-dense bytes of a [R, C] weight for several (v, m); m = 4 is 2:4."""
    rows = []
    for v, m in patterns:
        b = storage_bytes(shape, v, m, dtype)
        rows.append({"pattern": f"{v}:2:{m}", "v": v, "m": m, **b, "stored_ratio": b["stored"] / b["dense"],
                     "packed_ratio": b["packed"] / b["dense"]})
    return rows


# ----------------------------------------------------------------------------------------------
# SR-STE sparse fine-tuning (Sec. 3.2)
# ----------------------------------------------------------------------------------------------

class _SRSTE(torch.autograd.Function):
    """Forward W * mask; backward passes the gradient straight through and adds lam * (1 - mask) * W
    (sparse-refined STE, Zhou et al. ICLR'21)."""

    @staticmethod
    def forward(ctx, w: Tensor, mask: Tensor, lam: float) -> Tensor:
        ctx.save_for_backward(w, mask)
        ctx.lam = lam
        return w * mask

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, mask = ctx.saved_tensors
        return grad + ctx.lam * (~mask) * w, None, None


class VNMMask(nn.Module):
    """A parametrization W -> W * mask with the SR-STE gradient; ``mask`` is a buffer refreshed by
    :func:`refresh_masks_`."""

    def __init__(self, mask: Tensor, lam: float = 2e-4):
        super().__init__()
        self.register_buffer("mask", mask.bool())
        self.lam = lam

    def forward(self, w: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return w * self.mask
        return _SRSTE.apply(w, self.mask, self.lam)


def attach_sr_ste_(model: nn.Module, config: VNMConfig, lam: float = 2e-4, filter_fn: FilterFn | None = None,
                   act_norms: dict[str, Tensor] | None = None, masks: dict[str, Tensor] | None = None
                   ) -> dict[str, Tensor]:
    """Register an SR-STE V:N:M parametrization on every prunable weight (dense weights stay trainable).

    Returns the initial masks. Call :func:`refresh_masks_` every few steps and :func:`finalize_` at the end.
    """
    masks = masks if masks is not None else compute_masks(model, config, act_norms, filter_fn)
    for key, (mod, pname) in prunable_weights(model, filter_fn).items():
        parametrize.register_parametrization(mod, pname, VNMMask(masks[key].to(_get_weight(mod, pname).device), lam))
    return masks


def _parametrized(model: nn.Module) -> Iterable[tuple[str, nn.Module, str, VNMMask]]:
    for name, mod in model.named_modules():
        if parametrize.is_parametrized(mod):
            for pname, plist in mod.parametrizations.items():
                for p in plist:
                    if isinstance(p, VNMMask):
                        key = name if pname == "weight" else f"{name}.{pname}"
                        yield key, mod, pname, p


@torch.no_grad()
def refresh_masks_(model: nn.Module, config: VNMConfig, act_norms: dict[str, Tensor] | None = None) -> float:
    """Recompute every SR-STE mask from the current dense weights; returns the fraction of mask entries
    that changed."""
    changed, total = 0, 0
    for key, mod, pname, p in _parametrized(model):
        dense = mod.parametrizations[pname].original
        norm = act_norms.get(key) if act_norms is not None else None
        s = importance(dense, config.score, norm, config.ria_alpha)
        new = vnm_mask(dense, config.v, config.n, config.m, score=s, exact=config.exact, pad=config.pad)
        changed += int((new != p.mask).sum())
        total += new.numel()
        p.mask.copy_(new)
    if total == 0:
        raise ValueError("model: expected SR-STE parametrizations (call attach_sr_ste_ first), found none")
    return changed / total


@torch.no_grad()
def finalize_(model: nn.Module) -> dict[str, Tensor]:
    """Bake W * mask into every parametrized weight and remove the parametrizations; returns the masks."""
    masks = {}
    for key, mod, pname, p in list(_parametrized(model)):
        masks[key] = p.mask.clone()
        parametrize.remove_parametrizations(mod, pname, leave_parametrized=True)
    return masks


@contextmanager
def masks_frozen(model: nn.Module):
    """Temporarily set every SR-STE regulariser strength to 0 (plain STE)."""
    saved = [(p, p.lam) for *_, p in _parametrized(model)]
    for p, _ in saved:
        p.lam = 0.0
    try:
        yield
    finally:
        for p, lam in saved:
            p.lam = lam
