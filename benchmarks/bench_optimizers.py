"""One training task, every optimizer: parameter-free step sizes (polyak_clip) against tuned baselines.

Two character-level language models on Python's reference documentation (pydoc):

* the ``deepseek_moe`` ``tiny`` preset (MLA, DeepSeekMoE with aux-loss-free balancing, MTP), its full loss;
* nanoGPT's character model (``polyak_clip.neural.CharGPT``), cross-entropy.

Methods: AdamW and SGD (momentum 0.9) with their learning rate tuned on a grid, clipped SGD with lr tuned at
clip 1.0, and the untuned ``InexactPolyak`` (T = steps, l* = 0), ``DecSPS``, ``AdaSPS`` and ``DoG`` at their
defaults. Tuning picks the grid value with the lowest validation loss at seed 0; then every method runs at 3
seeds. Reported: training loss against steps and against wall time (mean over seeds), the final validation
loss (mean ± std) and the tuning cost (runs and seconds spent before the reported setting).

Usage:
    uv run python benchmarks/run.py optimizers          # quick: 150 steps
    uv run python benchmarks/run.py optimizers --full   # 1,000 steps
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from deepseek_moe import DeepSeekV3, DeepSeekV3Config
from papercommon.bench import Record
from papercommon.data import CharTokenizer, text_corpus
from papercommon.figures import figure
from papercommon.records import markdown_table
from polyak_clip import OPTIMIZERS
from polyak_clip.neural import CharGPT

SETTINGS = {True: {"steps": 150, "batch": 16, "block": 64, "seeds": (0, 1, 2), "eval_batches": 8},
            False: {"steps": 1000, "batch": 32, "block": 128, "seeds": (0, 1, 2), "eval_batches": 32}}
GRIDS = {"adamw": (1e-3, 3e-3, 1e-2), "sgd": (0.03, 0.1, 0.3, 1.0), "clipped_sgd": (0.1, 0.3, 1.0, 3.0)}


def _data():
    text = text_corpus("pydoc")
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    n = int(0.9 * len(ids))
    return tok.vocab_size, ids[:n], ids[n:]


def _batch(ids: torch.Tensor, st: dict, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(ids) - st["block"] - 1, (st["batch"],), generator=g)
    off = ix[:, None] + torch.arange(st["block"])
    return ids[off], ids[off + 1]


def _models(vocab: int, st: dict) -> dict[str, Callable[[], tuple[torch.nn.Module, Callable]]]:
    def deepseek():
        model = DeepSeekV3(DeepSeekV3Config.preset("tiny", vocab_size=vocab, max_seq_len=st["block"]))
        return model, lambda x, y: model(x, labels=y).loss

    def nanogpt():
        model = CharGPT(vocab, st["block"], d=64, layers=2)
        return model, lambda x, y: model(x, y)

    return {"deepseek_moe tiny": deepseek, "nanoGPT char": nanogpt}


def _optimizer(method: str, params, steps: int, lr: float | None):
    if method == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    if method == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if method == "clipped_sgd":
        return OPTIMIZERS["clipped_sgd"](params, lr=lr, clip=1.0)
    if method == "inexact_polyak":
        return OPTIMIZERS[method](params, T=steps, lower_bound=0.0)
    return OPTIMIZERS[method](params)


def _run(build, method: str, lr: float | None, seed: int, data, st: dict) -> dict:
    _, train_ids, val_ids = data
    torch.manual_seed(seed)
    model, loss_fn = build()
    params = list(model.parameters())
    opt = _optimizer(method, params, st["steps"], lr)
    g = torch.Generator().manual_seed(seed)
    losses, wall, t0 = [], [], time.perf_counter()
    for _ in range(st["steps"]):
        x, y = _batch(train_ids, st, g)

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = loss_fn(x, y)
            loss.backward()
            return loss

        loss = float(opt.step(closure).detach())
        losses.append(loss)
        wall.append(time.perf_counter() - t0)
        if not (math.isfinite(loss) and torch.nn.utils.get_total_norm(params).isfinite()):
            break  # diverged: a non-finite loss or weight (the model refuses NaN hidden states downstream)
    else:
        with torch.no_grad():
            gv = torch.Generator().manual_seed(10_000)
            val = statistics.fmean(float(loss_fn(*_batch(val_ids, st, gv))) for _ in range(st["eval_batches"]))
        return {"losses": losses, "wall": wall, "val": val if math.isfinite(val) else math.inf,
                "seconds": time.perf_counter() - t0}
    return {"losses": losses, "wall": wall, "val": math.inf, "seconds": time.perf_counter() - t0}


def main(out: Path, quick: bool = True) -> list[Record]:
    st = SETTINGS[quick]
    data = _data()
    records = []
    curves: dict[str, dict[str, list[dict]]] = {}
    for task, build in _models(data[0], st).items():
        curves[task] = {}
        _run(build, "sgd", 1e-3, 0, data, dict(st, steps=3, eval_batches=1))  # warm-up: lazy init out of the timings
        for method in ("adamw", "sgd", "clipped_sgd", "inexact_polyak", "decsps", "adasps", "dog"):
            grid = GRIDS.get(method, (None,))
            tune = {lr: _run(build, method, lr, st["seeds"][0], data, st) for lr in grid}
            lr = min(tune, key=lambda k: tune[k]["val"]) if len(grid) > 1 else grid[0]
            runs = [tune[lr]] + [_run(build, method, lr, s, data, st) for s in st["seeds"][1:]]
            vals = [r["val"] for r in runs]
            finite = [v for v in vals if math.isfinite(v)]
            curves[task][method] = runs
            rec = Record(f"optimizers/{task}/{method}",
                         config={"task": task, "method": method, "lr": lr, "grid": list(grid), **st},
                         metrics={"val_loss_mean": statistics.fmean(finite) if finite else math.inf,
                                  "val_loss_std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
                                  "diverged_seeds": len(vals) - len(finite),
                                  "diverged_tuning_runs": sum(not math.isfinite(r["val"]) for r in tune.values()),
                                  "tuning_runs": len(grid), "tuning_seconds": sum(r["seconds"] for r in tune.values()),
                                  "seconds_per_run": statistics.fmean(r["seconds"] for r in runs),
                                  "final_train_loss": statistics.fmean(r["losses"][-1] for r in runs)})
            records.append(rec)
            print(f"[optimizers] {task} {method}: val {rec.metrics['val_loss_mean']:.3f} ± "
                  f"{rec.metrics['val_loss_std']:.3f} (lr {lr}, {len(grid)} tuning runs)")
    _write(out, records, curves, quick)
    return records


def _write(out: Path, records: list[Record], curves: dict, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [[r.config["task"], r.config["method"], "-" if r.config["lr"] is None else r.config["lr"],
             f"{r.metrics['val_loss_mean']:.3f} ± {r.metrics['val_loss_std']:.3f}", r.metrics["diverged_seeds"],
             f"{r.metrics['tuning_runs']} ({r.metrics['diverged_tuning_runs']} diverged)", f"{r.metrics['tuning_seconds']:.0f}", f"{r.metrics['seconds_per_run']:.1f}"]
            for r in records]
    (out / "table.md").write_text(
        f"<!-- `uv run python benchmarks/run.py optimizers{'' if quick else ' --full'}` -->\n"
        + markdown_table(["task", "method", "lr (tuned)", "val loss (3 seeds)", "diverged", "tuning runs",
                          "tuning s", "s / run"], rows))
    tasks = list(curves)
    with figure(out / "curves.png", nrows=len(tasks), ncols=2, figsize=(11, 3.6 * len(tasks)),
                title="training loss (mean over 3 seeds)") as axes:
        for row, task in zip(axes, tasks):
            for method, runs in curves[task].items():
                n = min(len(r["losses"]) for r in runs)
                mean = [statistics.fmean(r["losses"][i] for r in runs) for i in range(n)]
                wall = [statistics.fmean(r["wall"][i] for r in runs) for i in range(n)]
                row[0].plot(range(1, n + 1), mean, label=method, lw=1)
                row[1].plot(wall, mean, label=method, lw=1)
            for ax, xl in zip(row, ("step", "seconds")):
                ax.set_xlabel(xl)
                ax.set_ylabel(f"{task} train loss")
                ax.set_ylim(top=6.0)
