"""proper_loss_bounds: ``ProperLossModule(loss)`` forward + backward against ``F.cross_entropy`` (issue 17).

Batch 4096 x 1000 classes, float32 logits, mean reduction; every loss timed round-robin with the
baseline in one process. Targets: the log loss <= 1.3x (it is the cross-entropy: the fast path calls
``F.cross_entropy``), every other loss <= 3x (loss and gradient in closed form, a custom autograd Function).

    uv run python benchmarks/run.py cpu --only proper_loss_bounds
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from papercommon.bench import Record, interleaved, ratio_record
from proper_loss_bounds import ProperLossModule

LOSSES = {"log": 1.3, "brier": 3.0, "spherical": 3.0, "tsallis-1.5": 3.0, "tsallis-3": 3.0}


def records(quick: bool) -> list[Record]:
    g = torch.Generator().manual_seed(0)
    B, K = 4096, 1000
    z = torch.randn(B, K, generator=g).requires_grad_(True)
    y = torch.randint(0, K, (B,), generator=g)

    def step(fn):
        def run():
            z.grad = None
            fn().backward()
        return run

    fns = {name: step(lambda m=ProperLossModule(name): m(z, y)) for name in LOSSES}
    fns["cross_entropy"] = step(lambda: F.cross_entropy(z, y))
    timings = interleaved(fns, rep=7 if quick else 15, warmup=1)
    cfg = {"batch": B, "classes": K, "dtype": "float32", "reduction": "mean", "threads": torch.get_num_threads()}
    return [ratio_record(f"proper_loss_bounds/{name}-fwd-bwd-4096x1000", timings, name, "cross_entropy",
                         target=target, config=cfg,
                         note="F.cross_entropy fast path" if name == "log" else
                         "closed form: softmax + one power + one row sum forward, one or two passes backward")
            for name, target in LOSSES.items()]
