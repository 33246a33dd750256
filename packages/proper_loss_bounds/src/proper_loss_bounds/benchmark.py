"""Throughput benchmarks: regret pairs per second, and fused vs autograd training-loss gradients.

* ``regret``: ``loss.regret(q, p)`` on ``N`` random pairs (validation included), numpy float64 and
  torch float64/float32, against the per-pair definition loop :func:`regret_reference` (baseline).
* ``module``: forward + backward of :class:`ProperLossModule` on ``(B, K)`` logits, fused closed-form
  gradient against autograd through the closed-form loss (baseline).

Run: ``uv run python -m proper_loss_bounds bench`` (``--device cuda`` on a GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from papercommon.bench import Record, benchmark, render_table

from proper_loss_bounds.losses import get_loss, regret_reference
from proper_loss_bounds.modules import composite_loss

REGRET_LOSSES = ("log", "brier", "spherical", "tsallis-1.5", "tsallis-3", "zero-one", "quartic")
MODULE_LOSSES = ("log", "brier", "spherical", "tsallis-1.5", "pseudo-spherical-3")


def _pairs(n: int, k: int, dtype: torch.dtype, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(2, n, k, dtype=torch.float64).exponential_(generator=g)
    x = (x / x.sum(-1, keepdim=True)).to(dtype=dtype, device=device)
    return x[0], x[1]


def bench_regret(n: int = 100_000, k: int = 10, device: str = "cpu", rep: int = 5, n_ref: int = 100) -> list[Record]:
    """Pairs per second of the vectorised regret (numpy and torch) vs the per-pair loop."""
    records = []
    for name in REGRET_LOSSES:
        loss = get_loss(name)
        q, p = _pairs(n, k, torch.float64, "cpu")
        qn, pn = q.numpy(), p.numpy()
        t_ref = benchmark(lambda: regret_reference(loss, qn[:n_ref], pn[:n_ref]), warmup=0, rep=1)
        ref_pps = n_ref / (t_ref.median_ms / 1e3)
        t_np = benchmark(lambda: loss.regret(qn, pn), warmup=1, rep=rep)
        rows = {"numpy-f64": t_np}
        for dt, tag in ((torch.float64, "torch-f64"), (torch.float32, "torch-f32")):
            qt, pt = q.to(device=device, dtype=dt), p.to(device=device, dtype=dt)
            rows[f"{tag}-{device}"] = benchmark(lambda qt=qt, pt=pt: loss.regret(qt, pt), warmup=2, rep=rep,
                                                device=device)
        for tag, t in rows.items():
            pps = n / (t.median_ms / 1e3)
            records.append(Record(f"proper_loss_bounds/regret/{name}/{tag}",
                                  config={"loss": name, "backend": tag, "pairs": n, "K": k},
                                  metrics={"ms": t.median_ms, "pairs_per_s": pps, "baseline": "per-pair loop",
                                           "baseline_pairs_per_s": ref_pps, "speedup": pps / ref_pps}))
    return records


def bench_module(batch: int = 4096, k: int = 100, device: str = "cpu", rep: int = 10) -> list[Record]:
    """Forward+backward time of the fused proper composite loss vs autograd of the closed form."""
    records = []
    g = torch.Generator().manual_seed(0)
    z0 = (torch.randn(batch, k, generator=g) * 2).to(device)
    y = torch.randint(0, k, (batch,), generator=g).to(device)
    for name in MODULE_LOSSES:
        loss = get_loss(name)
        times = {}
        for fused in (True, False):
            z = z0.clone().requires_grad_(True)

            def step(z=z, fused=fused):
                out = composite_loss(z, y, loss, fused=fused).mean()
                torch.autograd.grad(out, z)

            times[fused] = benchmark(step, warmup=2, rep=rep, device=device)
        bytes_moved = 3 * batch * k * 4  # read logits, write grad, re-read probabilities (float32)
        records.append(Record(f"proper_loss_bounds/module/{name}", config={"loss": name, "B": batch, "K": k,
                                                                          "dtype": "float32", "device": device},
                              metrics={"fused_ms": times[True].median_ms, "autograd_ms": times[False].median_ms,
                                       "speedup": times[False].median_ms / times[True].median_ms,
                                       "fused_GBps": bytes_moved / (times[True].median_ms / 1e3) / 1e9,
                                       "examples_per_s": batch / (times[True].median_ms / 1e3)}))
    return records


def run(out: Path | str | None = None, *, quick: bool = False, device: str = "cpu") -> list[Record]:
    """Run both benchmarks, print tables and (optionally) save the records as one JSON list."""
    import json

    n = 20_000 if quick else 100_000
    reg = bench_regret(n=n, device=device, rep=3 if quick else 5)
    mod = bench_module(batch=1024 if quick else 4096, device=device, rep=5 if quick else 10)
    print(render_table(reg, ["name", "metrics.pairs_per_s", "metrics.baseline_pairs_per_s", "metrics.speedup"]))
    print(render_table(mod, ["name", "metrics.fused_ms", "metrics.autograd_ms", "metrics.speedup",
                             "metrics.examples_per_s"]))
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([r.to_dict() for r in reg + mod], indent=1) + "\n")
    return reg + mod


if __name__ == "__main__":  # pragma: no cover
    np.set_printoptions(precision=4)
    run()
