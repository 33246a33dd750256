"""Layer-wise calibration (Sec. 3.4; official ``train_utils.cali_flat_quant``).

For each block in turn: record its full-precision output on the calibration inputs, wrap it with the
transforms and quantizers, train the learnable parts to minimise ``MSE(block_q(X_fp), block_fp(X_fp))``
(both fed the *full-precision* inputs: quantization error does not propagate between blocks), freeze the
transforms, and pass the full-precision outputs on as the next block's inputs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from flatquant import functional as FQ
from flatquant.config import FlatQuantConfig


class _StopForward(Exception):
    pass


@dataclass
class CalibrationReport:
    """What calibration did: per block, the output MSE before and after training and the time taken."""

    config: dict[str, Any]
    layers: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mean_mse(self) -> float:
        return sum(r["mse"] for r in self.layers) / max(len(self.layers), 1)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "layers": self.layers, "seconds": self.seconds, "mean_mse": self.mean_mse}


def check_calibration_data(data: torch.Tensor, cfg: FlatQuantConfig, vocab_size: int | None = None) -> torch.Tensor:
    """Validate token ids ``[N, T]``: integer, ``N >= cfg.nsamples`` rows (the first ``nsamples`` are used),
    ``T == cfg.seqlen``, every id in ``[0, vocab_size)``. Returns the ``[nsamples, seqlen]`` long tensor."""
    if isinstance(data, list | tuple):
        if not data:
            raise ValueError("calibration_data: expected token ids [N, T] with N >= 1, got an empty list")
        try:
            data = torch.stack([torch.as_tensor(d) for d in data])
        except (RuntimeError, TypeError, ValueError) as e:
            raise ValueError(f"calibration_data: expected sequences of equal length, got {e}") from None
    if not torch.is_tensor(data) or data.ndim != 2 or data.dtype not in (torch.int64, torch.int32):
        desc = f"{type(data).__name__} {tuple(data.shape)} {data.dtype}" if torch.is_tensor(data) else type(data).__name__
        raise ValueError(f"calibration_data: expected integer token ids of shape [N, T], got {desc}")
    n, t = data.shape
    if n == 0 or t == 0:
        raise ValueError(f"calibration_data: expected a non-empty [N, T] tensor, got shape {(n, t)}")
    if n < cfg.nsamples:
        raise ValueError(f"calibration_data: expected at least FlatQuantConfig.nsamples={cfg.nsamples} rows, got {n} "
                         "(lower nsamples or add sequences)")
    if t != cfg.seqlen:
        raise ValueError(f"calibration_data: expected sequences of FlatQuantConfig.seqlen={cfg.seqlen} tokens, got "
                         f"{t} (set seqlen={t} or reshape the data)")
    lo, hi = int(data.min()), int(data.max())
    if lo < 0 or (vocab_size is not None and hi >= vocab_size):
        raise ValueError(f"calibration_data: expected token ids in [0, {vocab_size}) (the model's vocab_size), got ids "
                         f"in [{lo}, {hi}]")
    return data[: cfg.nsamples].long()


@torch.no_grad()
def capture_layer_inputs(model: nn.Module, first_layer: nn.Module, batches: list[torch.Tensor]
                         ) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Run the model up to its first block and return that block's inputs and keyword arguments per batch."""
    inps, kws = [], []

    def hook(_mod, args, kwargs):
        inps.append(args[0] if args else kwargs.pop("hidden_states"))
        kws.append({k: v for k, v in kwargs.items() if k != "hidden_states"})
        raise _StopForward

    h = first_layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for ids in batches:
            try:
                model(input_ids=ids)
            except _StopForward:
                pass
    finally:
        h.remove()
    return inps, kws


def _out(y):
    return y[0] if isinstance(y, tuple) else y


def calibrate(model: nn.Module, adapter, cfg: FlatQuantConfig, data: torch.Tensor, progress: bool = True
              ) -> CalibrationReport:
    """Wrap every block of ``model`` with the method of ``cfg`` and calibrate it layer by layer (in place)."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    device = next(model.parameters()).device
    data = data[: cfg.nsamples].to(device)  # already checked: [nsamples, seqlen]
    bs = cfg.batch_size
    batches = [data[i:i + bs] for i in range(0, (len(data) // bs) * bs, bs)]
    blocks = adapter.layers(model)
    use_cache = getattr(model.config, "use_cache", None)
    if use_cache is not None:
        model.config.use_cache = False
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    report = CalibrationReport(config=cfg.to_dict())
    fp_inps, kws = capture_layer_inputs(model, blocks[0], batches)
    bar = tqdm(range(len(blocks)), desc=f"flatquant[{cfg.method}]", unit="layer", disable=not progress)
    for i in bar:
        t0, c0 = time.perf_counter(), time.process_time()
        layer = blocks[i]
        # 1. full-precision outputs, and per-channel input maxima for the diag / SmoothQuant init
        stats: dict[str, torch.Tensor] = {}
        hooks = []
        for slot, lins in adapter.stat_slots(layer).items():
            def record(_m, args, slot=slot):
                m = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float()
                stats[slot] = torch.maximum(stats[slot], m) if slot in stats else m
            hooks.append(lins[0].register_forward_pre_hook(record))
        wmax = {slot: torch.cat([lin.weight.detach() for lin in lins]).abs().amax(0).float()
                for slot, lins in adapter.stat_slots(layer).items()}
        with torch.no_grad():
            fp_outs = [_out(layer(x, **kw)) for x, kw in zip(fp_inps, kws)]
        for h in hooks:
            h.remove()
        # 2. wrap, init the per-channel scales
        diag_transforms = adapter.wrap_layer(layer, cfg, gen, f"layers.{i}")
        alpha = cfg.smooth_alpha if cfg.method == "smoothquant" else cfg.diag_alpha
        for slot, t in diag_transforms.items():
            if t is not None and t.diag is not None:
                t.init_diag(stats[slot], wmax[slot], alpha)
        # 3. train
        rec: dict[str, float] = {"layer": i}
        params = _trainable(layer, cfg)
        if cfg.epochs > 0 and params:
            rec.update(_train_layer(layer, params, cfg, fp_inps, kws, fp_outs, bar))
        for t in _transforms(layer):
            t.freeze()
        for p in layer.parameters():
            p.requires_grad_(False)
        if cfg.weight_quantizer == "gptq":
            _gptq_layer(layer, adapter, cfg, fp_inps, kws)
        # 4. block output MSE of the quantized block on the full-precision inputs
        with torch.no_grad():
            mse = sum(float(torch.mean((_out(layer(x, **kw)) - y) ** 2)) for x, kw, y in zip(fp_inps, kws, fp_outs))
        rec["mse"] = mse / len(fp_inps)
        rec["seconds"] = time.perf_counter() - t0
        rec["cpu_seconds"] = time.process_time() - c0  # CPU time of this process (all its threads)
        report.layers.append(rec)
        bar.set_postfix(mse=f"{rec['mse']:.3g}")
        fp_inps = fp_outs  # full-precision inputs of the next block
    if use_cache is not None:
        model.config.use_cache = use_cache
    model.train(was_training)
    report.seconds = time.perf_counter() - t_start
    return report


def _transforms(layer: nn.Module):
    from flatquant.modules import Transform

    return [m for m in layer.modules() if isinstance(m, Transform)]


def _trainable(layer: nn.Module, cfg: FlatQuantConfig) -> dict[str, list[nn.Parameter]]:
    """Parameter groups: transforms and scales at ``lr``, clipping factors at ``clip_lr_mult * lr``."""
    if not cfg.learnable:
        return {}
    from flatquant.modules import SVDFactor

    groups: dict[str, list[nn.Parameter]] = {"trans": [], "clip": []}
    for name, p in layer.named_parameters():
        p.requires_grad_(False)
        if "clip_max" in name or "clip_min" in name:
            groups["clip"].append(p)
        elif name.endswith(".diag") and cfg.add_diag:
            groups["trans"].append(p)
    if cfg.cali_trans:
        for m in layer.modules():
            if isinstance(m, SVDFactor):
                groups["trans"] += [m.a_u, m.a_v, m.sigma]
    for ps in groups.values():
        for p in ps:
            p.requires_grad_(True)
    return {k: v for k, v in groups.items() if v}


def _train_layer(layer, params, cfg, fp_inps, kws, fp_outs, bar) -> dict[str, float]:
    groups = [{"params": params.get("trans", []), "lr": cfg.lr},
              {"params": params.get("clip", []), "lr": cfg.lr * cfg.clip_lr_mult}]
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * len(fp_inps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=cfg.lr * cfg.min_lr_ratio)
    first = last = math.nan
    with torch.enable_grad():
        for epoch in range(cfg.epochs):
            total = 0.0
            for x, kw, y in zip(fp_inps, kws, fp_outs):
                loss = torch.mean((_out(layer(x, **kw)) - y) ** 2)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"calibration diverged (loss {float(loss)}); lower FlatQuantConfig.lr")
                opt.zero_grad(set_to_none=True)
                (loss / loss.detach()).backward()  # the official normalisation
                opt.step()
                sched.step()
                total += loss.item()
            total /= len(fp_inps)
            if epoch == 0:
                first = total
            last = total
            bar.set_postfix(epoch=epoch, loss=f"{total:.3g}")
    return {"loss_first_epoch": first, "loss_last_epoch": last}


@torch.no_grad()
def _gptq_layer(layer, adapter, cfg, fp_inps, kws) -> None:
    """GPTQ on every linear of the block, with Hessians of its (transformed, quantized) inputs."""
    lins = adapter.quant_linears(layer)
    hs = {id(lin): torch.zeros(lin.in_features, lin.in_features, dtype=torch.float64) for lin in lins}
    count = [0]

    def make_hook(lin):
        def hook(_m, args):
            x = args[0].detach().reshape(-1, lin.in_features).double().cpu()
            hs[id(lin)] += 2 * x.T @ x
        return hook

    hooks = [lin.register_forward_pre_hook(make_hook(lin)) for lin in lins]
    for x, kw in zip(fp_inps, kws):
        layer(x, **kw)
        count[0] += x.shape[0] * x.shape[1]
    for h in hooks:
        h.remove()
    for lin in lins:
        w, _ = lin.effective_weight()  # transformed and LWC-clipped, as the official reparameterize + GPTQ
        q, scale, _zero = FQ.gptq_quantize(w.detach().cpu(), hs[id(lin)] / count[0], cfg.w_bits, cfg.w_sym,
                                          percdamp=cfg.gptq_percdamp)
        lin.fixed_weight = q.float().to(w.device)
        lin.fixed_scale = scale.float().to(w.device)
