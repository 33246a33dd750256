"""polyak_clip: the ``InexactPolyak`` update alone against ``torch.optim.SGD(momentum=0.9, foreach=True)`` (issue 17).

10M parameters in 10 tensors of 1000 x 1000, gradients already in place: what each optimizer adds to a
training step. IPS reads the gradients once for ``||g||`` (``_foreach_norm``) and makes one
``_foreach_addcmul_`` pass with the step size as a 0-d tensor; SGD with momentum makes three passes over its
buffer. ``track_best=True`` (the class default, Algorithm 1's output) adds a copy of the parameters whenever
the loss improves (on the CPU; a ``_foreach_lerp_`` pass with a 0/1 weight on accelerators); the benchmark
times its worst case, a loss that improves on every step. The closures return a loss tensor, so no forward
pass is timed.

    uv run python benchmarks/run.py cpu --only polyak_clip
"""

from __future__ import annotations

import os

import torch
from papercommon.bench import Record, interleaved, ratio_record
from polyak_clip import InexactPolyak

SHAPES = [(1000, 1000)] * 10  # 10M parameters in 10 tensors (the setting)
TARGET = 1.2  # at most 1.2x SGD's time


def records(quick: bool) -> list[Record]:
    torch.manual_seed(0)
    models = {name: [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
              for name in ("sgd", "ips", "ips_best")}
    for params in models.values():
        for p in params:
            p.grad = torch.randn_like(p)
    sgd = torch.optim.SGD(models["sgd"], lr=1e-9, momentum=0.9, foreach=True)
    ips = InexactPolyak(models["ips"], T=10**6, track_best=False)
    ips_best = InexactPolyak(models["ips_best"], T=10**6)
    loss = torch.tensor(1.0)  # f(x) - l* = 1: a tiny step, the parameters stay where they are
    falling = [1e3]

    def improving_loss() -> torch.Tensor:  # the worst case for track_best: a new best on every step
        falling[0] *= 0.999
        return torch.tensor(falling[0])

    timings = interleaved({"SGD": sgd.step, "InexactPolyak": lambda: ips.step(lambda: loss),
                           "InexactPolyak+best": lambda: ips_best.step(improving_loss)},
                          rep=21 if quick else 41, warmup=3)
    config = {"params": sum(p.numel() for p in models["sgd"]), "tensors": len(SHAPES), "dtype": "float32",
              "loadavg_1min": os.getloadavg()[0],
              "threads": torch.get_num_threads(), "baseline_args": "lr=1e-9, momentum=0.9, foreach=True"}
    return [
        ratio_record("polyak_clip/inexact_polyak_update", timings, "InexactPolyak", "SGD", target=TARGET,
                     config=dict(config, track_best=False),
                     note="track_best=False (the paper's setting for networks): 1 norm pass + 1 addcmul pass"),
        ratio_record("polyak_clip/inexact_polyak_update_track_best", timings, "InexactPolyak+best", "SGD",
                     target=TARGET, config=dict(config, track_best=True),
                     note="track_best=True (the default), loss improving every step (worst case): + 1 copy pass"),
    ]
