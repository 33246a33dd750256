"""Optimizer step time against torch.optim.SGD on a 10M-parameter model (the issue's target: <= 1.2x SGD).

Two numbers per optimizer: the update alone (gradients already computed: what the optimizer adds) and a
full training step (forward, backward and update through the closure). Writes a Record to
packages/polyak_clip/results/step_time.json.

    uv run python packages/polyak_clip/benchmarks/step_time.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from papercommon.bench import Record, render_table
from polyak_clip import AdaSPS, DecSPS, DoG, InexactPolyak, Polyak

OUT = Path(__file__).resolve().parents[1] / "results" / "step_time.json"


def model_10m() -> torch.nn.Module:
    # 8 blocks of 2 x (1024 x 608) linear layers ~ 10M parameters, many tensors like a real network
    layers = []
    for _ in range(8):
        layers += [torch.nn.Linear(1024, 608), torch.nn.GELU(), torch.nn.Linear(608, 1024)]
    return torch.nn.Sequential(*layers)


def main() -> Record:
    torch.manual_seed(0)
    model = model_10m()
    n = sum(p.numel() for p in model.parameters())
    x = torch.randn(8, 1024)

    def loss_fn():
        return model(x).square().mean() + 1.0

    loss_fn().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    makers = {"SGD": lambda p: torch.optim.SGD(p, lr=1e-9), "InexactPolyak": lambda p: InexactPolyak(p, T=10**6, track_best=False),
              "InexactPolyak+best": lambda p: InexactPolyak(p, T=10**6), "Polyak": lambda p: Polyak(p),
              "DecSPS": lambda p: DecSPS(p), "AdaSPS": lambda p: AdaSPS(p), "DoG": lambda p: DoG(p)}
    init = [p.detach().clone() for p in model.parameters()]

    def timed(step, warmup: int = 3, rep: int = 20) -> float:
        # each timed step starts from the same weights (restored outside the timed region): the Polyak
        # family takes large steps on this synthetic loss and would otherwise leave the finite range
        times = []
        for i in range(warmup + rep):
            with torch.no_grad():
                torch._foreach_copy_(list(model.parameters()), init)
            t0 = time.perf_counter()
            step()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(times)

    metrics = {}
    for name, make in makers.items():
        opt = make(model.parameters())

        def update_only():
            for p, g in zip(model.parameters(), grads):
                p.grad = g
            opt.step(lambda: torch.tensor(1.0)) if name != "SGD" else opt.step()

        def full():
            def closure():
                opt.zero_grad()
                loss = loss_fn()
                loss.backward()
                return loss

            opt.step(closure)

        metrics[name] = {"update_ms": timed(update_only), "train_step_ms": timed(full)}
    for m in metrics.values():
        m["update_vs_sgd"] = m["update_ms"] / metrics["SGD"]["update_ms"]
        m["train_step_vs_sgd"] = m["train_step_ms"] / metrics["SGD"]["train_step_ms"]
    import os

    rec = Record("polyak_clip/step_time", config={"params": n, "batch": 8, "device": "cpu",
                                                 "threads": torch.get_num_threads(),
                                                 "loadavg_1min_at_end": os.getloadavg()[0]}, metrics=metrics)
    rec.save(OUT)
    rows = [{"name": k, "metrics": v} for k, v in metrics.items()]
    print(render_table(rows, ["name", "metrics.update_ms", "metrics.update_vs_sgd", "metrics.train_step_ms",
                              "metrics.train_step_vs_sgd"]))
    return rec


if __name__ == "__main__":
    main()
