"""Reproductions registered with ``papercommon reproduce phinet`` (also ``python -m phinet reproduce``).

* ``weight-decay`` (paper Fig. 6 / Table 1): kNN accuracy and the collapse gauge of SimSiam, PhiNet and
  X-PhiNet for weight decay in {0, 1e-5, 1e-4, 5e-4, 1e-3}.
* ``continual`` (paper Sec. 5.3, Table 3): Split tasks of disjoint classes in sequence; accuracy on every task
  after each task, forgetting per model.
* ``linear-dynamics`` (paper Sec. 4): the linear model's eigenmode ODE integrated numerically for SimSiam and
  PhiNet over a weight-decay grid, plus the full matrix flow for X-PhiNet.
* ``weight-decay-mnist`` / ``continual-mnist``: the first two on MNIST-5k (28x28, 4,000 train / 1,000 test,
  fixed stratified split) with the digits model. They cost ~30 / ~9 single-thread CPU minutes, over the quick
  budget, so they run only with ``--full`` (quick mode returns "not run"); their records go to ``mnist5k/``.

Quick mode (CPU, minutes): 8x8 digits, the small CNN (width 16, d = 64), 88 SGD steps per run. The run is
~400x shorter than the paper's 800 CIFAR-10 epochs, so weight decay has far less time to act: quick mode
multiplies each weight decay by :data:`QUICK_WD_SCALE` = 400 (the records keep the paper-scale labels and
the factor).
Full mode: the paper's CIFAR-10 setting (ResNet-18, 800 epochs, batch 512): about 10 GPU-hours per run on
an A100-class GPU (15 runs for the sweep), weeks on a CPU; it needs CIFAR-10 (downloaded by torchvision).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
from papercommon.figures import figure
from papercommon.metrics import knn_accuracy, spearman
from papercommon.records import jsonable, markdown_table, read_record, write_record
from papercommon.reproduce import Claim, reproduction
from tqdm.auto import tqdm

from phinet.config import ModelConfig, TrainConfig
from phinet.data import class_split, load_images, split_tasks
from phinet.dynamics import FlowParams, aligned_init, critical_eta, eigen_flow, matrix_flow
from phinet.train import Trainer

WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 5e-4, 1e-3)
QUICK_WEIGHT_DECAYS = (0.0, 5e-4, 1e-3)
SEEDS = (0, 1, 2)
SSL_MODELS = ("simsiam", "phinet", "xphinet")
PAPER_STEPS = 800 * (50_000 // 512)          # 800 CIFAR-10 epochs at batch 512
PAPER_LR = 0.03 * 512 / 256
QUICK_WD_SCALE = 400.0
"""Quick mode multiplies each weight decay by this. Matching the paper's total shrinkage lr * wd * T exactly
(a factor ~1400 at 88 steps) collapsed SimSiam *and* PhiNet already at wd = 5e-4 in a pilot run (test std of z/|z|
0.000 for both), unlike the paper where 5e-4 is the healthy default; x400 at 88 steps (the x200 at 176 steps of
the first pilot) keeps 5e-4 healthy and puts 1e-3 at the edge of collapse."""


MNIST_WD_SCALE = 200.0
"""MNIST-5k runs 186 steps per model (6 epochs of 31 batches), 2.1x the 88 of the digits quick run: the digits
factor 400 times 88/186 (rounded to 200) keeps the total weight-decay shrinkage lr * wd * T of the digits run."""
DATA_SETTINGS = ("digits", "mnist5k", "cifar10")
"""The data of the weight-decay and continual reproductions: digits (quick), mnist5k (the CPU setting on
28x28 MNIST, ``--data mnist5k`` / the ``*-mnist`` reproductions), cifar10 (full, the paper's)."""


def _settings(quick: bool, data: str | None = None) -> dict:
    """The setting of one data set; ``data=None``: digits with ``quick``, CIFAR-10 without."""
    data = data or ("digits" if quick else "cifar10")
    if data == "digits":
        return dict(data="digits", seeds=SEEDS, weight_decays=QUICK_WEIGHT_DECAYS, epochs=8, continual_epochs=8,
                    batch_size=128, base_lr=0.06, warmup_epochs=1, knn_k=20, wd_scale=QUICK_WD_SCALE,
                    continual_batch_size=64, continual_weight_decay=5e-4 * 30,
                    model=dict(backbone="cnn_small", in_channels=1, image_size=8, cnn_width=16, proj_dim=64,
                               proj_hidden=128, pred_hidden=16))
    if data == "mnist5k":   # the digits model and optimiser on 28x28 MNIST-5k (4,000 train / 1,000 test)
        # continual: 5 epochs x 12 batches of 64 per task (digits: 8 x 4); wd x16 keeps the digits' lr * wd * T
        return dict(data="mnist5k", seeds=SEEDS, weight_decays=QUICK_WEIGHT_DECAYS, epochs=6, continual_epochs=5,
                    batch_size=128, base_lr=0.06, warmup_epochs=1, knn_k=20, wd_scale=MNIST_WD_SCALE,
                    continual_batch_size=64, continual_weight_decay=5e-4 * 16,
                    model=dict(backbone="cnn_small", in_channels=1, image_size=28, cnn_width=16, proj_dim=64,
                               proj_hidden=128, pred_hidden=16))
    if data == "cifar10":
        return dict(data="cifar10", seeds=(1234, 1235, 1236), weight_decays=WEIGHT_DECAYS, epochs=800,
                    continual_epochs=200, batch_size=512, base_lr=0.03, warmup_epochs=10, knn_k=200, wd_scale=1.0,
                    continual_batch_size=256, continual_weight_decay=5e-4,
                    model=dict(backbone="resnet18_cifar", in_channels=3, image_size=32))
    raise ValueError(f"data must be one of {DATA_SETTINGS}, got {data!r}")


def _mean_std(xs: list[float]) -> tuple[float, float]:
    t = torch.tensor(xs, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(xs) > 1 else 0.0)


def _pm(xs: list[float]) -> str:
    m, sd = _mean_std(xs)
    return f"{m:.3f}±{sd:.3f}"


def _beats(a: list[float], b: list[float]) -> bool:
    """``mean(a) - mean(b)`` larger than the seed spread (the larger of the two standard deviations)."""
    (ma, sa), (mb, sb) = _mean_std(a), _mean_std(b)
    return ma - mb > max(sa, sb)


def _plot(path: Path, xs, series: dict[str, list[list[float]]], xlabel: str, ylabel: str, logx: bool = False,
          hline: float | None = None) -> None:
    """Mean over seeds with a +-std band, one line per model (a plain number per x: one deterministic run)."""
    with figure(path, figsize=(4.8, 3.4)) as ax:
        for k, per_x in series.items():
            ms = [_mean_std(v if isinstance(v, list) else [v]) for v in per_x]
            m = [a for a, _ in ms]
            ax.plot(xs, m, marker="o", label=k)
            ax.fill_between(xs, [a - b for a, b in ms], [a + b for a, b in ms], alpha=0.2)
        if hline is not None:
            ax.axhline(hline, color="grey", ls="--", lw=0.8, label="1/sqrt(d)")
        if logx:
            ax.set_xscale("symlog", linthresh=1e-5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)


def _model_config(st: dict, model: str) -> ModelConfig:
    return ModelConfig(model=model, **st["model"])


def _prefix(data: str | None) -> str:
    """Records and plots of a non-default data set go to a sub-folder named after it (``mnist5k/``)."""
    return f"{data}/" if data else ""


def run_weight_decay(quick: bool = True, out: Path | str = "reproductions/phinet", models=SSL_MODELS,
                     weight_decays=None, seeds=None, progress: bool = False, data: str | None = None) -> dict:
    """Train each model at each weight decay and seed; return
    ``{"runs": {model: {wd: {"knn_acc": [per seed], "collapse_std": [...], "effective_rank": [...]}}}}``.

    ``data``: see :func:`_settings` (None: digits with ``quick``, CIFAR-10 without; "mnist5k" writes its
    record and plots under ``out/mnist5k/``).

    With the environment variable ``PHINET_REUSE_RUNS=1`` an existing runs record in ``out`` whose setting,
    models, weight decays and seeds are exactly these is re-scored instead of re-trained (all or nothing); the
    result then carries ``reused_from`` (that record's path, git commit and date) and the record is not rewritten.
    """
    st = _settings(quick, data)
    weight_decays = tuple(weight_decays or st["weight_decays"])
    seeds = tuple(seeds or st["seeds"])
    out = Path(out)
    name = _prefix(data) + "weight_decay_runs"
    if os.environ.get("PHINET_REUSE_RUNS") == "1":
        old = _reusable(out / f"{name}.json", {"quick": quick, **st}, models, weight_decays, seeds)
        if old is not None:
            _plot_weight_decay(out, data, old, models, weight_decays, seeds)
            return old
    X, y = load_images(st["data"], "train")
    Xt, yt = load_images(st["data"], "test")
    steps = st["epochs"] * (X.shape[0] // st["batch_size"])
    lr = st["base_lr"] * st["batch_size"] / 256
    wd_scale = st["wd_scale"]
    res: dict = {"settings": st, "weight_decays": list(weight_decays), "seeds": list(seeds), "steps": steps,
                 "wd_scale": wd_scale, "exposure_ratio": PAPER_LR * PAPER_STEPS / (lr * steps), "runs": {}}
    jobs = [(m, wd, seed) for m in models for wd in weight_decays for seed in seeds]
    for m, wd, seed in tqdm(jobs, desc="weight-decay runs", disable=not progress):
        tc = TrainConfig(epochs=st["epochs"], batch_size=st["batch_size"], base_lr=st["base_lr"],
                         warmup_epochs=st["warmup_epochs"], weight_decay=wd * wd_scale, seed=seed, knn_k=st["knn_k"])
        t0 = time.perf_counter()
        tr = Trainer(_model_config(st, m), tc, progress=False)
        tr.fit(X)
        r = tr.evaluate(X, y, Xt, yt)
        cell = res["runs"].setdefault(m, {}).setdefault(str(wd), {"knn_acc": [], "collapse_std": [],
                                                                   "effective_rank": [], "seconds": []})
        for k in ("knn_acc", "collapse_std", "effective_rank"):
            cell[k].append(r[k])
        cell["seconds"].append(time.perf_counter() - t0)
        cell["healthy_std"] = r["healthy_std"]
    write_record(out, name, config={"quick": quick, **st}, metrics=res)
    _plot_weight_decay(out, data, res, models, weight_decays, seeds)
    return res


def _reusable(path: Path, config: dict, models, weight_decays, seeds) -> dict | None:
    """The metrics of the runs record at ``path`` if it holds exactly this sweep, else None."""
    if not path.is_file():
        return None
    rec = read_record(path)
    m = rec["metrics"]
    same = (rec["config"] == json.loads(json.dumps(jsonable(config))) and m.get("seeds") == list(seeds)
            and m.get("weight_decays") == list(weight_decays)
            and all(len(m["runs"].get(k, {}).get(str(w), {}).get("knn_acc", [])) == len(seeds)
                    for k in models for w in weight_decays))
    if not same:
        return None
    return dict(m, reused_from={"path": str(path), "git": rec.get("git"), "created": rec.get("created")})


def _plot_weight_decay(out: Path, data: str | None, res: dict, models, weight_decays, seeds) -> None:
    healthy = res["runs"][models[0]][str(weight_decays[0])]["healthy_std"]
    for key, lab in (("knn_acc", "kNN accuracy"), ("collapse_std", "std of normalised z"),
                     ("effective_rank", "effective rank of features")):
        _plot(out / f"{_prefix(data)}weight_decay_{key}.png", list(weight_decays),
              {m: [res["runs"][m][str(w)][key] for w in weight_decays] for m in models},
              "weight decay (paper scale)", f"{lab} (mean ± std, {len(seeds)} seeds)", logx=True,
              hline=healthy if key == "collapse_std" else None)


@reproduction("weight-decay", "kNN accuracy, effective rank and std gauge vs weight decay: SimSiam vs PhiNet vs X-PhiNet")
def weight_decay(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    return _weight_decay_claims(quick, out, seed)


def _not_run(ref: str, what: str, name: str, minutes: int) -> list[Claim]:
    return [Claim(ref, what, "see README", "not run", holds=None,
                  note=f"MNIST-5k runs only with --full (3 seeds, ~{minutes} min on one core: over the quick budget); "
                       f"the committed record results/mnist5k/{name}.json comes from `papercommon reproduce phinet "
                       f"--full --only {name}`")]


@reproduction("weight-decay-mnist", "The weight-decay sweep (Fig. 6) on MNIST-5k (--full only; quick mode: not run)")
def weight_decay_mnist(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    if quick:
        return _not_run("Fig. 6", "weight-decay sweep on MNIST-5k", "weight-decay-mnist", 30)
    return _weight_decay_claims(quick, out, seed, data="mnist5k")


def _weight_decay_claims(quick: bool, out: Path, seed: int = 0, data: str | None = None) -> list[Claim]:
    seeds = tuple(seed + s for s in _settings(quick, data)["seeds"])
    res = run_weight_decay(quick, out, seeds=seeds, data=data)
    runs, wds = res["runs"], res["weight_decays"]
    cell = lambda m, w, k: runs[m][str(w)][k]                                    # noqa: E731 - per-seed list
    setting = (f"{res['settings']['data']}, {res['steps']} steps, wd x{res['wd_scale']:.0f}, seeds {list(seeds)}; "
               "holds only if the mean difference exceeds the larger seed std")
    if "reused_from" in res:
        ru = res["reused_from"]
        setting += (f"; runs re-scored from {ru['path']} (trained at commit {(ru.get('git') or {}).get('commit')}, "
                    f"{ru.get('created')})")
    names = " / ".join(("SimSiam", "PhiNet", "X-PhiNet"))
    claims = []
    for w in wds:
        # a tie inside the seed spread is "no": a claim never holds by a tolerance as wide as its spread
        claims.append(Claim("Fig. 6", f"kNN acc at wd={w:g} ({names})", "PhiNet > SimSiam",
                            " / ".join(_pm(cell(m, w, "knn_acc")) for m in SSL_MODELS),
                            holds=_beats(cell("phinet", w, "knn_acc"), cell("simsiam", w, "knn_acc")),
                            note=setting))
    # the worst setting of each model, seed by seed
    worst = {m: [min(cell(m, w, "knn_acc")[i] for w in wds) for i in range(len(seeds))] for m in SSL_MODELS}
    top = wds[-1]
    rank_top = {m: cell(m, top, "effective_rank") for m in SSL_MODELS}
    every = [(a, r) for m in SSL_MODELS for w in wds for a, r in zip(cell(m, w, "knn_acc"), cell(m, w, "effective_rank"))]
    rho = float(spearman([a for a, _ in every], [r for _, r in every]))
    std_every = [(a, sd) for m in SSL_MODELS for w in wds for a, sd in zip(cell(m, w, "knn_acc"), cell(m, w, "collapse_std"))]
    rho_std = float(spearman([a for a, _ in std_every], [sd for _, sd in std_every]))
    claims += [
        Claim("Fig. 6", f"worst kNN acc over the wd sweep ({names})", "PhiNet's worst > SimSiam's worst",
              " / ".join(_pm(worst[m]) for m in SSL_MODELS), holds=_beats(worst["phinet"], worst["simsiam"]),
              note=setting),
        Claim("Sec. 5.1", f"effective rank of test features at the largest wd={top:g} ({names})",
              "PhiNet > SimSiam (less collapse)", " / ".join(_pm(rank_top[m]) for m in SSL_MODELS),
              holds=_beats(rank_top["phinet"], rank_top["simsiam"]), note=setting),
        Claim("gauge", "Spearman(effective rank, kNN acc) over all runs (std gauge for comparison)",
              "> 0.5: the collapse measure agrees with accuracy", f"{rho:.3f} (std gauge: {rho_std:.3f})",
              holds=rho > 0.5, note=f"{len(every)} runs; the std gauge of z/|z| is blind to dimensional collapse"),
    ]
    return claims


def run_continual(quick: bool = True, out: Path | str = "reproductions/phinet", models=SSL_MODELS,
                  seeds=None, progress: bool = False, data: str | None = None) -> dict:
    """Split-{digits | MNIST-5k | CIFAR-10}: 5 tasks of 2 classes in sequence, kNN accuracy matrix and forgetting,
    per seed. ``data`` as in :func:`run_weight_decay`."""
    st = _settings(quick, data)
    seeds = tuple(seeds or st["seeds"])
    X, y = load_images(st["data"], "train")
    Xt, yt = load_images(st["data"], "test")
    tasks = split_tasks(10, 2)
    epochs = st["continual_epochs"]
    bs = st["continual_batch_size"]
    res: dict = {"settings": st, "seeds": list(seeds), "tasks": tasks, "epochs_per_task": epochs, "batch_size": bs,
                 "runs": {}}
    for m, seed in tqdm([(m, s) for m in models for s in seeds], desc="continual runs", disable=not progress):
        tc = TrainConfig(epochs=epochs, batch_size=bs, base_lr=st["base_lr"], warmup_epochs=min(1, epochs),
                         weight_decay=st["continual_weight_decay"], seed=seed, knn_k=st["knn_k"])
        tr = Trainer(_model_config(st, m), tc, progress=False)
        A = torch.full((len(tasks), len(tasks)), float("nan"))      # A[k, t]: acc on task t after task k
        seen_acc: list[float] = []

        def after(k: int, tr: Trainer = tr, A: torch.Tensor = A, seen_acc: list = seen_acc) -> dict:
            ftr, fte = tr.features(X), tr.features(Xt)
            for t, cls in enumerate(tasks):
                mtr, mte = torch.isin(y, torch.tensor(cls)), torch.isin(yt, torch.tensor(cls))
                A[k, t] = knn_accuracy(ftr[mtr], y[mtr], fte[mte], yt[mte], k=tc.knn_k, temperature=tc.knn_temperature)
            seen = torch.tensor([c for cls in tasks[: k + 1] for c in cls])
            mtr, mte = torch.isin(y, seen), torch.isin(yt, seen)
            seen_acc.append(knn_accuracy(ftr[mtr], y[mtr], fte[mte], yt[mte], k=tc.knn_k, temperature=tc.knn_temperature))
            return {"seen_acc": seen_acc[-1]}

        tr.fit_continual([class_split(X, y, cls)[0] for cls in tasks], epochs, after)
        T = len(tasks)
        run = res["runs"].setdefault(m, {"forgetting": [], "final_avg_acc": [], "final_seen_acc": [], "per_seed": []})
        run["forgetting"].append(sum((A[t:T - 1, t].max() - A[T - 1, t]).item() for t in range(T - 1)) / (T - 1))
        run["final_avg_acc"].append(A[T - 1].mean().item())
        run["final_seen_acc"].append(seen_acc[-1])
        run["per_seed"].append({"seed": seed, "acc_matrix": A.tolist(), "seen_acc": seen_acc})
    out = Path(out)
    write_record(out, _prefix(data) + "continual_runs", config={"quick": quick, **st}, metrics=res)
    _plot(out / f"{_prefix(data)}continual_seen_acc.png", list(range(1, len(tasks) + 1)),
          {m: [[r["seen_acc"][k] for r in res["runs"][m]["per_seed"]] for k in range(len(tasks))] for m in models},
          "tasks seen", f"kNN acc, all seen classes (mean ± std, {len(seeds)} seeds)")
    return res


@reproduction("continual", "Split tasks in sequence: forgetting of SimSiam, PhiNet and X-PhiNet")
def continual(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    return _continual_claims(quick, out, seed)


@reproduction("continual-mnist", "Split-MNIST-5k in sequence (Table 3) (--full only; quick mode: not run)")
def continual_mnist(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    if quick:
        return _not_run("Table 3", "Split-MNIST-5k continual learning", "continual-mnist", 9)
    return _continual_claims(quick, out, seed, data="mnist5k")


def _continual_claims(quick: bool, out: Path, seed: int = 0, data: str | None = None) -> list[Claim]:
    res = run_continual(quick, out, seeds=tuple(seed + s for s in _settings(quick, data)["seeds"]), data=data)
    r = res["runs"]
    note = (f"Split-{res['settings']['data']} 5x2 classes, {res['epochs_per_task']} epochs/task, task-wise kNN, "
            f"seeds {res['seeds']}; forgetting = mean over t<T of max_(t<=k<T) A[k,t] - A[T,t]; holds only if "
            "the margin exceeds the larger seed std")
    names = "SimSiam / PhiNet / X-PhiNet"
    others = ("simsiam", "phinet")
    return [
        Claim("Table 3", f"forgetting ({names})", "X-PhiNet least",
              " / ".join(_pm(r[m]["forgetting"]) for m in SSL_MODELS),
              holds=all(_beats(r[m]["forgetting"], r["xphinet"]["forgetting"]) for m in others), note=note),
        Claim("Table 3", f"final average task accuracy ({names})", "X-PhiNet best",
              " / ".join(_pm(r[m]["final_avg_acc"]) for m in SSL_MODELS),
              holds=all(_beats(r["xphinet"]["final_avg_acc"], r[m]["final_avg_acc"]) for m in others), note=note),
        Claim("Sec. 5.3", f"kNN acc over all 10 classes after the last task ({names})", "PhiNets > SimSiam",
              " / ".join(_pm(r[m]["final_seen_acc"]) for m in SSL_MODELS),
              holds=all(_beats(r[m]["final_seen_acc"], r["simsiam"]["final_seen_acc"]) for m in ("phinet", "xphinet")),
              note=note),
    ]


def run_dynamics(quick: bool = True, out: Path | str = "reproductions/phinet", sigma2: float = 0.5,
                 lam: float = 1.0) -> dict:
    """Integrate the eigenmode ODE on an (eta x initial value) grid for SimSiam (lambda = 0) and PhiNet."""
    n_eta = 13 if quick else 41
    etas = torch.linspace(0.0, 0.4, n_eta)
    g = torch.logspace(-2.5, 0.0, 6 if quick else 12)                        # log-spaced initial values
    s0, p0, g0 = torch.meshgrid(g, g, g, indexing="ij")                     # initial values
    t_max, dt = (150.0, 0.05) if quick else (600.0, 0.01)
    e = etas.view(-1, 1, 1, 1)
    res: dict = {"etas": etas.tolist(), "sigma2": sigma2, "lam": lam, "t_max": t_max, "dt": dt, "models": {}}
    for name, lm in (("simsiam", 0.0), ("phinet", lam)):
        r = eigen_flow(s0, p0, g0, eta=e, sigma2=sigma2, lam=lm, t_max=t_max, dt=dt, record_every=10**9)
        sT = r["s"][-1]                                                      # (eta, *init grid)
        res["models"][name] = {
            "median_final_s": sT.flatten(1).median(1).values.tolist(),
            "max_final_s": sT.flatten(1).max(1).values.tolist(),
            "frac_collapsed": (sT.flatten(1) < 1e-3).float().mean(1).tolist(),
            "critical_eta_theory": critical_eta(sigma2, lm)}
    # X-PhiNet: the full matrix flow with an EMA Sim-2 target (no closed eigen-ODE); 4 modes in R^{4 x 6}.
    d, n = 4, 6
    s_i = torch.tensor([0.8, 0.5, 0.3, 0.1], dtype=torch.float64)
    W, Wp, Wg = aligned_init(d, n, s_i, torch.full((d,), 0.3, dtype=torch.float64),
                             torch.full((d,), 0.5, dtype=torch.float64))
    xs = {}
    for eta in ([0.1, 0.25] if quick else [0.05, 0.1, 0.2, 0.25, 0.3]):
        p = FlowParams(eta=eta, sigma2=sigma2, lam=lam)
        xs[str(eta)] = {
            "simsiam": matrix_flow(W, Wp, None, p, t_max=60.0, dt=0.02)["eig"][-1].tolist(),
            "phinet": matrix_flow(W, Wp, Wg, p, t_max=60.0, dt=0.02)["eig"][-1].tolist(),
            "xphinet": matrix_flow(W, Wp, Wg, p, t_max=60.0, dt=0.02, ema_rate=0.5)["eig"][-1].tolist()}
    res["matrix_flow_final_eigs"] = xs
    out = Path(out)
    write_record(out, "dynamics", config={"quick": quick}, metrics=res)
    _plot(out / "dynamics_collapsed.png", res["etas"], {m: res["models"][m]["frac_collapsed"] for m in res["models"]},
          "weight decay eta", "fraction of inits with s -> 0")
    return res


@reproduction("linear-dynamics", "Linear learning dynamics: SimSiam's eigenmodes collapse where PhiNet's survive")
def linear_dynamics(quick: bool, out: Path) -> list[Claim]:
    res = run_dynamics(quick, out)
    etas = res["etas"]
    ms, mp = res["models"]["simsiam"], res["models"]["phinet"]
    # measured critical eta: the smallest eta at which every initial value collapses
    crit = lambda m: next((e for e, f in zip(etas, m["frac_collapsed"]) if f == 1.0), math.inf)
    band = [e for e, a, b in zip(etas, ms["frac_collapsed"], mp["frac_collapsed"]) if a == 1.0 and b < 1.0]
    small = [(e, a, b) for e, a, b in zip(etas, ms["frac_collapsed"], mp["frac_collapsed"]) if 0 < e < 0.1]
    mf = res["matrix_flow_final_eigs"]["0.25"]
    note = f"sigma^2={res['sigma2']}, lambda={res['lam']}, t={res['t_max']}, grid of {len(etas)} eta values"
    return [
        Claim("Sec. 4", "weight decay at which SimSiam's modes all reach s=0 (measured / theory 1/(4k))",
              f"{ms['critical_eta_theory']:.3f}", f"{crit(ms):.3f}",
              holds=abs(crit(ms) - ms["critical_eta_theory"]) <= etas[1] - etas[0] + 1e-9, note=note),
        Claim("Sec. 4", "weight decay at which PhiNet's modes all reach s=0 (measured / upper bound (1+l)/(4k))",
              f"{mp['critical_eta_theory']:.3f}", f"{crit(mp):.3f}",
              holds=crit(mp) > crit(ms), note=note),
        Claim("Sec. 4", "eta values where SimSiam collapses completely but PhiNet keeps s>0",
              "non-empty band", f"{len(band)} ({min(band, default=float('nan')):.3f}-{max(band, default=float('nan')):.3f})",
              holds=len(band) > 0, note=note),
        Claim("Sec. 4", "fraction of inits collapsing at small eta in (0, 0.1) (SimSiam / PhiNet, mean)",
              "PhiNet <= SimSiam",
              f"{sum(a for _, a, _ in small) / max(1, len(small)):.3f} / {sum(b for _, _, b in small) / max(1, len(small)):.3f}",
              holds=sum(b for _, _, b in small) <= sum(a for _, a, _ in small), note=note),
        Claim("Sec. 4", "matrix flow at eta=0.25: largest eigenvalue of WW^T (SimSiam / PhiNet / X-PhiNet)",
              "SimSiam -> 0, PhiNets > 0", " / ".join(f"{mf[m][0]:.3g}" for m in ("simsiam", "phinet", "xphinet")),
              holds=mf["simsiam"][0] < 1e-3 < min(mf["phinet"][0], mf["xphinet"][0]), note="d=4, n=6, EMA rate 0.5"),
    ]


REPRODUCTIONS = [weight_decay, continual, linear_dynamics, weight_decay_mnist, continual_mnist]
RECORD_DIRS = {"weight-decay-mnist": "mnist5k", "continual-mnist": "mnist5k"}
"""Sub-folder of ``results/`` holding a reproduction's committed record (default: ``results/`` itself)."""
DATA_OF = {"weight-decay-mnist": "mnist5k", "continual-mnist": "mnist5k"}


def results_table(results_dir: str | Path) -> str:
    """The README's reproduction table, rendered from the committed records in ``results_dir`` (the
    ``*-mnist`` records from its ``mnist5k/`` sub-folder, :data:`RECORD_DIRS`).

    The column "Official code (our data)" stays "-": the official PhiNets code was not run on our data (its
    repository is not available offline here and targets CIFAR / ImageNet on a GPU).

    Raises :class:`papercommon.records.RecordError` (naming the file) when a record is missing or corrupt.
    """
    results_dir = Path(results_dir)
    rows = []
    for r in REPRODUCTIONS:
        sub = RECORD_DIRS.get(r.name, "")
        path = results_dir / sub / f"{r.name}.json"
        shown = f"`results/{sub + '/' if sub else ''}{path.name}`"
        rec = read_record(path)
        quick = rec["config"].get("quick", True)
        if r.name == "linear-dynamics":
            seeds = "deterministic"
        elif r.name in DATA_OF and quick:
            seeds = "-"                                                   # the quick record only says "not run"
        else:
            seeds = str(len(_settings(quick, DATA_OF.get(r.name))["seeds"]))
        if rec["metrics"].get("error"):
            rows.append([r.name, "-", "-", "-", "-", f"ERROR: {rec['metrics']['error']}", "error", seeds, shown])
        for c in rec["metrics"]["claims"]:
            verdict = {True: "yes", False: "no", None: "n/a"}[c["holds"]]
            rows.append([r.name, c["paper_ref"], c["metric"], c["paper"], "-", c["ours"], verdict, seeds, shown])
    return markdown_table(["Reproduction", "Claim", "Metric", "Paper", "Official code (our data)", "Ours", "holds",
                           "seeds", "record"], rows)
