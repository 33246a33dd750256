"""Reproductions registered with ``papercommon reproduce polyak_clip``.

* ``synthetic``: Fig. 1, six methods on the (L0, L1)-smooth quartic for L1 in {1, 10, 100, 1000}
  (deterministic; the same in quick and full mode);
* ``neural``: Sec. 6.2 at small scale, nanoGPT / LSTM / T5 on offline text, 3 seeds per method: Inexact
  Polyak (no tuning) against grid-tuned clipped SGD, Polyak, DecSPS, AdaSPS and DoG.

Verdicts on the neural runs compare means only when they differ by more than the seed spread (mean ± std
intervals that do not overlap); a difference inside the spread is a "no" with that reason.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
from papercommon.figures import figure
from papercommon.records import write_record
from papercommon.reproduce import Claim, reproduction

from polyak_clip.neural import PAPER_GRIDS, QUICK_GRIDS, TASKS, NeuralConfig, train
from polyak_clip.synthetic import SyntheticConfig, plot_synthetic, run_synthetic

RIVALS = ("inexact_polyak", "polyak", "decsps", "adasps", "dog")
TUNED = "clipped_sgd (tuned)"
N_SEEDS = 3
# quick: a 1-layer, width-32 model per task, 100 steps of batch 8 x 32 tokens (about a minute of CPU)
QUICK = {"steps": 100, "batch_size": 8, "block_size": 32, "width": 32, "layers": 1, "eval_batches": 4}
FULL = {"steps": 1000, "batch_size": 64, "block_size": 64, "width": 64, "layers": 2, "eval_batches": 8}


@reproduction("synthetic", "Fig. 1: GD, DecSPS, AdaSPS slow down as L1 grows; Polyak, clipped GD, IPS do not")
def synthetic(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    """Deterministic (no randomness: ``seed`` is unused), seconds in both modes."""
    cfg = SyntheticConfig()
    result = run_synthetic(cfg)
    plot_synthetic(result, out / "synthetic.png")
    L1s = cfg.L1_values
    table = {str(L1): {m: {"final_gap": r["final_gap"], "iterations_to_tol": r["iterations_to_tol"],
                           "hyperparameters": r["hyperparameters"]} for m, r in per.items()}
             for L1, per in result["results"].items()}
    write_record(out, "synthetic_runs", config=cfg, metrics={"by_L1": table})
    res = result["results"]
    claims = []
    for m in ("gd", "decsps", "adasps"):
        lo, hi = res[L1s[0]][m]["final_gap"], res[L1s[-1]][m]["final_gap"]
        claims.append(Claim("Fig. 1", f"{m}: final gap at L1={L1s[0]:g} -> {L1s[-1]:g}", "grows with L1",
                            f"{lo:.2e} -> {hi:.2e}", holds=hi > 1e3 * max(lo, 1e-12) and hi > cfg.tol,
                            note="deterministic"))
    for m in ("polyak", "clipped_gd", "inexact_polyak"):
        its = [res[L1][m]["iterations_to_tol"] for L1 in L1s]
        gaps = [res[L1][m]["final_gap"] for L1 in L1s]
        claims.append(Claim("Fig. 1", f"{m}: iterations to gap {cfg.tol:g} for L1 = {', '.join(f'{v:g}' for v in L1s)}",
                            "nearly flat in L1 (all converge)", ", ".join(f"{i:g}" for i in its),
                            holds=all(math.isfinite(i) for i in its) and max(gaps) <= cfg.tol,
                            note="deterministic; final gaps " + ", ".join(f"{g:.1e}" for g in gaps)))
    return claims


def _tasks() -> tuple[list[str], str]:
    """The tasks that can run here (T5 needs the optional ``transformers``) and a note on the others."""
    if importlib.util.find_spec("transformers") is None:
        return [t for t in TASKS if t != "t5"], "t5 skipped: transformers is not installed (pip install 'polyak_clip[t5]')"
    return list(TASKS), ""


def _neural_runs(quick: bool, seed: int, tasks: list[str]) -> dict:
    from tqdm.auto import tqdm

    seeds = tuple(seed + i for i in range(N_SEEDS))
    grids = QUICK_GRIDS if quick else PAPER_GRIDS
    sizes = QUICK if quick else FULL
    total = sum(len(RIVALS) * N_SEEDS + len(grids[t]["lr"]) * len(grids[t]["clip"]) + N_SEEDS - 1 for t in tasks)
    bar = tqdm(total=total, desc="neural runs", unit="run")

    def run(cfg, method, s, **kw):
        bar.set_postfix_str(f"{cfg.task}/{method}/seed {s}")
        r = train(cfg, method, s, **kw)
        bar.update()
        return r

    runs: dict = {}
    for task in tasks:
        cfg = NeuralConfig(task=task, **sizes)
        per: dict = {m: [run(cfg, m, s) for s in seeds] for m in RIVALS}
        grid = [run(cfg, "clipped_sgd", seeds[0], lr=lr, clip=c) for lr in grids[task]["lr"] for c in grids[task]["clip"]]
        best = min(grid, key=lambda r: (r["diverged"], r["val_loss"]))  # selected on the first seed
        per[TUNED] = [best] + [run(cfg, "clipped_sgd", s, lr=best["lr"], clip=best["clip"]) for s in seeds[1:]]
        runs[task] = {"config": cfg.to_dict(), "per_method": per,
                      "grid": [{k: r[k] for k in ("lr", "clip", "val_loss", "diverged")} for r in grid]}
    bar.close()
    return runs


def _summary(rs: list[dict]) -> dict:
    """Mean ± std of the final validation loss over the seeds that did not diverge; diverged count."""
    vals = [r["val_loss"] for r in rs if not r["diverged"]]
    return {"val_loss_mean": float(np.mean(vals)) if vals else math.inf,
            "val_loss_std": float(np.std(vals)) if vals else 0.0,
            "val_losses": [r["val_loss"] for r in rs], "first_train_loss": [r["losses"][0] for r in rs],
            "diverged": sum(r["diverged"] for r in rs), "seeds": len(rs),
            "hyperparameters": {"lr": rs[0]["lr"], "clip": rs[0]["clip"]}}


def _fmt(s: dict) -> str:
    return f"{s['val_loss_mean']:.3f} ± {s['val_loss_std']:.3f} ({s['diverged']}/{s['seeds']} diverged)"


def _lower(a: dict, b: dict) -> bool:
    """``a`` is lower than ``b`` by more than the seed spread (the mean ± std intervals do not overlap)."""
    return a["val_loss_mean"] + a["val_loss_std"] < b["val_loss_mean"] - b["val_loss_std"]


def _plot_neural(runs: dict, path: Path) -> None:
    with figure(path, ncols=len(runs), figsize=(4.5 * len(runs), 3.2)) as axes:
        for ax, (task, r) in zip(np.atleast_1d(axes), runs.items()):
            for m, rs in r["per_method"].items():
                ax.plot(rs[0]["losses"], label=m, lw=1)
            ax.set_title(f"{task} (seed 0)")
            ax.set_xlabel("step")
            top = max(rs[0]["losses"][0] for rs in r["per_method"].values() if rs[0]["losses"])
            ax.set_ylim(top=top * 1.3)
        np.atleast_1d(axes)[0].set_ylabel("training loss")


def neural_claims(summary: dict) -> list[Claim]:
    """The Sec. 6.2 claims from per-task, per-method summaries (:func:`_summary`)."""
    claims = []
    for task, s in summary.items():
        ips, tuned, polyak = s["inexact_polyak"], s[TUNED], s["polyak"]
        n = ips["seeds"]
        claims.append(Claim("Sec. 6.2", f"{task}: IPS diverged runs (no tuning)", 0, f"{ips['diverged']}/{n}",
                            holds=ips["diverged"] == 0, note="divergence: non-finite loss, or the last quarter's "
                            "mean training loss above the first"))
        rival = min(("decsps", "adasps"), key=lambda m: s[m]["val_loss_mean"])
        better = _lower(ips, s[rival])
        claims.append(Claim("Sec. 6.2", f"{task}: val loss IPS vs best of DecSPS/AdaSPS ({rival})", "IPS lower",
                            f"{_fmt(ips)} vs {_fmt(s[rival])}", holds=better,
                            note=f"{n} seeds; " + ("lower by more than the seed spread" if better else
                                                   "not lower by more than the seed spread")))
        near = ips["val_loss_mean"] - ips["val_loss_std"] <= tuned["val_loss_mean"] + tuned["val_loss_std"]
        hp = tuned["hyperparameters"]
        claims.append(Claim("Sec. 6.2", f"{task}: val loss IPS vs grid-tuned clipped SGD", "comparable (IPS untuned)",
                            f"{_fmt(ips)} vs {_fmt(tuned)}", holds=near,
                            note=f"holds if IPS is not worse by more than the seed spread; tuned lr={hp['lr']}, "
                                 f"clip={hp['clip']}"))
        if task == "t5":
            others = [m for m in s if m != "polyak"]
            best = all(_lower(polyak, s[m]) for m in others)
            claims.append(Claim("Sec. 6.2", "t5: plain Polyak (f*=0) is the best method", "best on T5",
                                _fmt(polyak), holds=best,
                                note="lower than every other method by more than the seed spread" if best else
                                "not lower than every other method by more than the seed spread"))
        else:
            claims.append(Claim("Sec. 6.2", f"{task}: plain Polyak (f*=0) diverges", "diverges",
                                f"{polyak['diverged']}/{polyak['seeds']} diverged",
                                holds=polyak["diverged"] == polyak["seeds"],
                                note=f"holds if every seed diverged; val loss of the others {polyak['val_loss_mean']:.3f}"))
    return claims


@reproduction("neural", "Sec. 6.2: IPS trains nanoGPT, LSTM and T5 without tuning; beats DecSPS/AdaSPS")
def neural(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    import torch

    tasks, skipped = _tasks()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only spin (and burn CPU on a shared machine)
    try:
        runs = _neural_runs(quick, seed, tasks)
    finally:
        torch.set_num_threads(threads)
    _plot_neural(runs, out / "neural.png")
    summary = {task: {m: _summary(rs) for m, rs in r["per_method"].items()} for task, r in runs.items()}
    curves = {t: {m: [[round(v, 4) for v in x["losses"][::5]] for x in rs] for m, rs in r["per_method"].items()}
              for t, r in runs.items()}
    write_record(out, "neural_runs", config={"quick": quick, "seeds": N_SEEDS, "base_seed": seed,
                                             "tasks": {t: r["config"] for t, r in runs.items()}},
                 metrics={"summary": summary, "grid": {t: r["grid"] for t, r in runs.items()},
                          "curves_every_5_steps": curves, "skipped": skipped})
    claims = neural_claims(summary)
    if skipped:
        claims.append(Claim("Sec. 6.2", "t5 claims", "-", "-", holds=None, note=skipped))
    return claims


REPRODUCTIONS = [synthetic, neural]
