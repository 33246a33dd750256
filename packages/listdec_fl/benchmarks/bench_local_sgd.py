"""Vectorised local SGD of many clients vs the per-client autograd loop (the reference path).

One baseline round = every client runs 25 momentum-SGD steps (batch 32) from the global model. We time
``functional.local_sgd`` on all (runs x clients) rows at once against ``local_sgd_reference`` looped over the
rows (one ``nn.Module`` + autograd per client, like the official code), and report the speedup.

    uv run python packages/listdec_fl/benchmarks/bench_local_sgd.py [--device cuda] [--out results/]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from listdec_fl.functional import local_sgd, local_sgd_reference
from listdec_fl.models import LogisticRegression, SmallCNN
from papercommon.bench import Record, benchmark, render_table


def bench(model_name: str, rows: int, device: str, steps: int = 25, batch: int = 32) -> Record:
    in_shape, C = (1, 8, 8), 10
    model = LogisticRegression(in_shape, C) if model_name == "logreg" else SmallCNN(in_shape, C)
    g = torch.Generator().manual_seed(0)
    theta = model.init(rows, g).to(device)
    vel = torch.zeros_like(theta)
    batches = [(torch.randn(rows, batch, *in_shape, generator=g).to(device),
                torch.randint(0, C, (rows, batch), generator=g).to(device)) for _ in range(steps)]

    def fast():
        return local_sgd(model.loss_and_grad, theta, vel, batches, lr=0.01, momentum=0.9)

    def ref():
        for r in range(rows):
            mod = model.module(theta[r].cpu()).to(device)
            buf = [torch.zeros_like(p) for p in mod.parameters()]
            local_sgd_reference(mod, buf, [(x[r], y[r]) for x, y in batches], lr=0.01, momentum=0.9)

    t_fast = benchmark(fast, warmup=1, rep=5, device=device)
    t_ref = benchmark(ref, warmup=0, rep=2, device=device)
    return Record(f"local_sgd/{model_name}/{rows}", config={"model": model_name, "rows": rows, "steps": steps,
                                                             "batch": batch, "device": device},
                  metrics={"ms": t_fast.median_ms, "baseline_ms": t_ref.median_ms,
                           "speedup": t_ref.median_ms / t_fast.median_ms,
                           "client_steps_per_s": rows * steps / (t_fast.median_ms / 1e3)})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    recs = [bench("logreg", 35, a.device), bench("logreg", 140, a.device), bench("cnn", 35, a.device)]
    print(render_table(recs, ["name", "metrics.ms", "metrics.baseline_ms", "metrics.speedup", "metrics.client_steps_per_s"]))
    if a.out:
        for r in recs:
            r.save(Path(a.out) / f"bench_{r.name.replace('/', '_')}.json")


if __name__ == "__main__":
    main()
