"""Three-staged LoRA for V:N:M-sparse LLMs, built on peft (Sec. 3.3, Eq. 3).

The sparse weight is W' = (W + s B A) * Mask, with W frozen and only the LoRA factors trained:

1. dense LoRA (Mask = 1);
2. sparse LoRA with a dynamic mask: every ``mask_interval`` steps B A is merged into W, the factors are
   re-initialised and the mask is recomputed from the merged W (RIA with the calibration norms); the
   loss adds ``lam * sum ||(W + s B A) * (1 - Mask)||^2`` over the currently pruned entries (Eq. 3);
3. sparse LoRA with the mask fixed.

At the end (W + s B A) * Mask is merged into the base weights and peft is unloaded, leaving a plain
model with V:N:M-sparse weights. ``mode="fixed"`` runs the baseline: the one-shot mask from step 0 and
stage 3 only, for the same number of steps.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from vnm_sparse.config import ThreeStageLoRAConfig, VNMConfig
from vnm_sparse.functional import importance, vnm_mask

LossFn = Callable[[nn.Module, object], Tensor]


@dataclass
class LoRAHistory:
    """Per-step loss, stage and mask churn of a run."""

    loss: list[float] = field(default_factory=list)
    stage: list[int] = field(default_factory=list)
    mask_change: list[tuple[int, float]] = field(default_factory=list)  # (step, fraction of entries flipped)

    def to_dict(self) -> dict:
        return {"loss": self.loss, "stage": self.stage, "mask_change": self.mask_change}


class _Controller:
    """Holds the masks of every LoRA-wrapped layer and swaps their forward for the sparse one."""

    def __init__(self, layers: dict[str, nn.Module], vnm: VNMConfig, act_norms: dict[str, Tensor] | None):
        self.layers = layers
        self.vnm = vnm
        self.act_norms = act_norms
        self.masks: dict[str, Tensor | None] = {k: None for k in layers}
        self._float_masks: dict[str, Tensor] = {}
        for key, layer in layers.items():
            layer._vnm_ctrl, layer._vnm_key = self, key
            layer._vnm_dense_forward = layer.forward
            layer.forward = types.MethodType(_sparse_forward, layer)

    def delta(self, layer: nn.Module) -> Tensor:
        return layer.get_delta_weight(layer.active_adapters[0])

    @torch.no_grad()
    def remask(self, merge: bool) -> float:
        """Optionally merge B A into W and re-initialise the factors; recompute every mask from W."""
        flipped, total = 0, 0
        for key, layer in self.layers.items():
            w = layer.base_layer.weight
            if merge:
                w.add_(self.delta(layer).to(w.dtype))
                name = layer.active_adapters[0]
                layer.reset_lora_parameters(name, True)
            norm = self.act_norms.get(key) if self.act_norms is not None else None
            s = importance(w, self.vnm.score, norm, self.vnm.ria_alpha)
            new = vnm_mask(w, self.vnm.v, self.vnm.n, self.vnm.m, score=s, exact=self.vnm.exact, pad=self.vnm.pad)
            old = self.masks[key]
            if old is not None:
                flipped += int((old != new).sum())
            total += new.numel()
            self.masks[key] = new
        self._float_masks.clear()
        return flipped / max(total, 1)

    def float_mask(self, key: str, dtype: torch.dtype) -> Tensor:
        """The mask of ``key`` as a 0/1 tensor of ``dtype`` (cached until the next re-mask)."""
        m = self._float_masks.get(key)
        if m is None or m.dtype != dtype:
            m = self._float_masks[key] = self.masks[key].to(dtype)
        return m

    def regulariser(self) -> Tensor:
        """sum ||(W + s B A) * (1 - Mask)||^2 over all layers (Eq. 3)."""
        reg = 0.0
        for key, layer in self.layers.items():
            mask = self.masks[key]
            w = layer.base_layer.weight + self.delta(layer)
            reg = reg + (w * (~mask)).pow(2).sum()
        return reg

    def restore(self) -> None:
        for layer in self.layers.values():
            layer.forward = layer._vnm_dense_forward
            for attr in ("_vnm_ctrl", "_vnm_key", "_vnm_dense_forward"):
                delattr(layer, attr)


class MaskedLoRALinear(torch.autograd.Function):
    """``y = x ((W + s B A) * Mask)^T + b`` with a hand-written backward (the fast path).

    The masked merged weight is built in two passes (``addmm`` then an in-place multiply by a float mask) and
    the backward masks the weight gradient in place before the two rank-r products, so a step touches each
    weight-sized tensor three times instead of autograd's seven (with two bool-to-float copies).
    :func:`masked_lora_linear_reference` is the autograd expression it is tested against.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, lora_a: Tensor, lora_b: Tensor, mask: Tensor, scaling: float,
                bias: Tensor | None) -> Tensor:
        w = torch.addmm(weight, lora_b, lora_a, alpha=scaling).mul_(mask)
        ctx.save_for_backward(x, w, lora_a, lora_b, mask)
        ctx.scaling = scaling
        return nn.functional.linear(x, w, bias)

    @staticmethod
    def backward(ctx, gy: Tensor):
        x, w, lora_a, lora_b, mask = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx = gy @ w if need[0] else None
        gw = ga = gb = gbias = None
        if need[1] or need[2] or need[3]:
            g = gy.reshape(-1, gy.shape[-1]).T @ x.reshape(-1, x.shape[-1])
            g.mul_(mask)  # d/dW' of (W + s B A) * Mask
            if need[2]:
                ga = (lora_b.T @ g).mul_(ctx.scaling)
            if need[3]:
                gb = (g @ lora_a.T).mul_(ctx.scaling)
            gw = g if need[1] else None
        if need[6]:
            gbias = gy.reshape(-1, gy.shape[-1]).sum(0)
        return gx, gw, ga, gb, None, None, gbias


def masked_lora_linear_reference(x: Tensor, weight: Tensor, lora_a: Tensor, lora_b: Tensor, mask: Tensor,
                                 scaling: float, bias: Tensor | None) -> Tensor:
    """The autograd reference of :class:`MaskedLoRALinear`."""
    return nn.functional.linear(x, (weight + (lora_b @ lora_a) * scaling) * mask, bias)


def _sparse_forward(self, x: Tensor, *args, **kwargs) -> Tensor:
    ctrl = self._vnm_ctrl
    mask = ctrl.masks[self._vnm_key]
    if mask is None:  # stage 1: dense LoRA
        return self._vnm_dense_forward(x, *args, **kwargs)
    name = self.active_adapters[0]
    a, b = self.lora_A[name].weight, self.lora_B[name].weight
    w = self.base_layer.weight
    if self.fan_in_fan_out or x.dtype != w.dtype or a.dtype != w.dtype:  # the plain autograd expression
        w = (w + ctrl.delta(self)) * mask  # (W + s B A) * Mask
        return nn.functional.linear(x, w.to(x.dtype), self.base_layer.bias)
    return MaskedLoRALinear.apply(x, w, a, b, ctrl.float_mask(self._vnm_key, w.dtype), self.scaling[name],
                                  self.base_layer.bias)


def three_stage_lora(model: nn.Module, vnm: VNMConfig, cfg: ThreeStageLoRAConfig, batches: Iterator,
                     loss_fn: LossFn, *, act_norms: dict[str, Tensor] | None = None, mode: str = "three_stage",
                     progress: bool = True) -> tuple[nn.Module, dict[str, Tensor], LoRAHistory]:
    """Fine-tune a model into V:N:M sparsity with LoRA (three-staged, or the fixed-mask baseline).

    Args:
        model: a transformers causal LM (or any model whose ``cfg.target_modules`` are ``nn.Linear``).
        vnm: the pattern and score (RIA needs ``act_norms`` keyed by module name, see
            :func:`vnm_sparse.collect_act_norms`).
        cfg: the schedule (stage lengths, re-mask interval, lam, LoRA rank/alpha/lr).
        batches: an iterator of training batches (at least ``cfg.total_steps``).
        loss_fn: ``loss_fn(model, batch) -> scalar loss``.
        mode: "three_stage" (the paper) or "fixed" (one-shot mask at step 0, stage 3 only).
        progress: show a tqdm bar.

    Returns:
        ``(model, masks, history)``: the plain (peft-unloaded) model with sparse merged weights, the final
        masks by module name, and the training history.

    Paper: Sec. 3.3 (three-staged LoRA), Eq. 3 (pruned-weight regulariser).
    """
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    if mode not in ("three_stage", "fixed"):
        raise ValueError(f"mode: expected 'three_stage' or 'fixed', given {mode!r}")
    lcfg = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, bias="none",
                      target_modules=list(cfg.target_modules))
    pmodel = get_peft_model(model, lcfg)
    prefix = "base_model.model."
    from peft.tuners.lora import LoraLayer

    layers = {n[len(prefix):]: m for n, m in pmodel.named_modules() if isinstance(m, LoraLayer)}
    if not layers:
        raise ValueError(f"cfg.target_modules: expected names of linear layers in the model, given "
                         f"{cfg.target_modules} (matched none)")
    ctrl = _Controller(layers, vnm, act_norms)
    s1, s2, s3 = cfg.stage_steps if mode == "three_stage" else (0, 0, cfg.total_steps)
    if s1 == 0:
        ctrl.remask(merge=False)  # sparse from step 0 (one-shot mask of W)
    params = [p for p in pmodel.parameters() if p.requires_grad]
    make_opt = lambda: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    opt = make_opt()
    hist = LoRAHistory()
    pmodel.train()
    bar = tqdm(range(cfg.total_steps), desc=f"lora[{mode}]", disable=not progress)
    for step in bar:
        stage = 1 if step < s1 else (2 if step < s1 + s2 else 3)
        if stage >= 2 and step == s1 and s1 > 0:
            hist.mask_change.append((step, ctrl.remask(merge=True)))  # stage 1 -> 2: first sparse mask
            opt = make_opt()
        elif stage == 2 and (step - s1) % cfg.mask_interval == 0 and step > s1:
            hist.mask_change.append((step, ctrl.remask(merge=True)))
            opt = make_opt()
        try:
            batch = next(batches)
        except StopIteration as e:
            raise ValueError(f"batches: expected at least {cfg.total_steps} batches, ran out at step {step}") from e
        loss = loss_fn(pmodel, batch)
        total = loss + cfg.lam * ctrl.regulariser() if stage == 2 and cfg.lam > 0 else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step} (stage {stage})")
        hist.loss.append(loss.item())
        hist.stage.append(stage)
        bar.set_postfix(loss=f"{loss.item():.3f}", stage=stage)
    # merge (W + s B A) * Mask into the base weights and drop peft
    with torch.no_grad():
        if any(m is None for m in ctrl.masks.values()):
            ctrl.remask(merge=True)
        for key, layer in layers.items():
            w = layer.base_layer.weight
            w.copy_(((w + ctrl.delta(layer)) * ctrl.masks[key]).to(w.dtype))
    masks = {k: v.clone() for k, v in ctrl.masks.items()}
    ctrl.restore()
    base = pmodel.unload()
    base.eval()
    return base, masks, hist
