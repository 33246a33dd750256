"""Measurements: flatness of weights and activations before and after the transforms (the paper's Fig. 1 /
Fig. 3 view), a plot of sorted channel magnitudes, and sentence-embedding quality for encoders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flatquant import functional as FQ


@torch.no_grad()
def flatness_report(model: nn.Module, ids: torch.Tensor, layers: list[int] | None = None,
                    keep_curves: bool = False) -> list[dict[str, Any]]:
    """Flatness of each online-transform slot of a quantized (not yet deployed) model on ``ids``.

    For every block and slot (``qkv``, ``o``, ``upgate``, ``down``) it records the kurtosis and the top-1 /
    median channel magnitude of the activation before the transform (what a plain quantizer would see) and
    after it, and of the weights feeding on it (original vs transformed, first linear of the slot).

    Args:
        model: a model after :func:`flatquant.quantize_` (before :func:`flatquant.reparameterize`).
        ids: token ids ``[B, T]``.
        layers: block indices (default all).
        keep_curves: also return the sorted channel magnitudes (``curves``) for plotting.
    """
    from flatquant.api import get_adapter

    adapter = get_adapter(model)
    blocks = adapter.layers(model)
    layers = list(range(len(blocks))) if layers is None else layers
    rows: list[dict[str, Any]] = []
    hooks = []
    captured: dict[tuple[int, str], torch.Tensor] = {}
    for i in layers:
        for slot, iq in adapter.input_quantizers(blocks[i]).items():
            def hook(_m, args, key=(i, slot)):
                captured[key] = args[0].detach().reshape(-1, args[0].shape[-1])
            hooks.append(iq.register_forward_pre_hook(hook))
    try:
        model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    for i in layers:
        lin_of_slot = _first_linear_of_slots(adapter, blocks[i])
        for slot, iq in adapter.input_quantizers(blocks[i]).items():
            if iq.deployed:
                raise RuntimeError("flatness_report: expected a model before reparameterize")
            x = captured[(i, slot)].float()
            xt = iq.transform(x) if iq.transform is not None else x
            lin = lin_of_slot[slot]
            w = lin.weight.float()
            wt = lin.effective_weight(clip=False)[0].float()
            row = {"layer": i, "slot": slot}
            for name, t in (("act_before", x), ("act_after", xt), ("weight_before", w), ("weight_after", wt)):
                for k, v in FQ.flatness(t).items():
                    row[f"{name}_{k}"] = v
            if keep_curves:
                row["curves"] = {name: FQ.channel_magnitudes(t).tolist() for name, t in
                                 (("act_before", x), ("act_after", xt), ("weight_before", w), ("weight_after", wt))}
            rows.append(row)
    return rows


def _first_linear_of_slots(adapter, block) -> dict[str, nn.Module]:
    lins = {lin.name.split(".")[-1]: lin for lin in adapter.quant_linears(block)}
    if "q_proj" in lins:
        return {"qkv": lins["q_proj"], "o": lins["o_proj"], "upgate": lins["up_proj"], "down": lins["down_proj"]}
    names = {lin.name: lin for lin in adapter.quant_linears(block)}
    by_suffix = {k: next(v for n, v in names.items() if n.endswith(k)) for k in
                 ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense")}
    out_dense = next(v for n, v in names.items() if n.endswith("output.dense") and "attention" not in n)
    return {"qkv": by_suffix["attention.self.query"], "o": by_suffix["attention.output.dense"],
            "upgate": by_suffix["intermediate.dense"], "down": out_dense}


def plot_flatness(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Sorted channel magnitudes before / after the transforms for rows made with ``keep_curves=True``."""
    from papercommon.figures import figure

    rows = [r for r in rows if "curves" in r]
    if not rows:
        raise ValueError("plot_flatness: expected rows made with keep_curves=True, got none with curves")
    with figure(path, nrows=2, ncols=len(rows), figsize=(3.2 * len(rows), 5.5), title=title or None) as axes:
        axes = np.asarray(axes).reshape(2, len(rows))
        for j, r in enumerate(rows):
            for k, kind in enumerate(("act", "weight")):
                ax = axes[k, j]
                for when, style in (("before", "-"), ("after", "--")):
                    c = r["curves"][f"{kind}_{when}"]
                    ax.plot(range(len(c)), c, style, label=f"{when} (kurt {r[f'{kind}_{when}_kurtosis']:.1f})")
                ax.set_yscale("log")
                ax.set_title(f"L{r['layer']} {r['slot']} {'activation' if kind == 'act' else 'weight'}", fontsize=9)
                ax.set_xlabel("channel (sorted)", fontsize=8)
        axes[0, 0].set_ylabel("max |x| per channel")
        axes[1, 0].set_ylabel("max |w| per input channel")
    return Path(path)


@torch.no_grad()
def sentence_embeddings(model: nn.Module, tokenizer, texts: list[str], max_length: int = 256,
                        batch_size: int = 16) -> torch.Tensor:
    """all-MiniLM-L6-v2's sentence embeddings: mean pooling over tokens, L2-normalised. ``[N, hidden]``."""
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        h = model(**enc).last_hidden_state  # (B, T, C)
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        out.append(torch.nn.functional.normalize(e, dim=-1))
    return torch.cat(out)
