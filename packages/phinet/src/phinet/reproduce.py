"""Reproductions registered with ``papercommon reproduce phinet`` (also ``python -m phinet reproduce``).

* ``weight-decay`` (paper Fig. 6 / Table 1): kNN accuracy and the collapse gauge of SimSiam, PhiNet and
  X-PhiNet for weight decay in {0, 1e-5, 1e-4, 5e-4, 1e-3}.
* ``continual`` (paper Sec. 5.3, Table 3): Split tasks of disjoint classes in sequence; accuracy on every task
  after each task, forgetting per model.
* ``linear-dynamics`` (paper Sec. 4): the linear model's eigenmode ODE integrated numerically for SimSiam and
  PhiNet over a weight-decay grid, plus the full matrix flow for X-PhiNet.

Quick mode (CPU, minutes): 8x8 digits, the small CNN (width 16, d = 64), 176 SGD steps per run. The run is
~400x shorter than the paper's 800 CIFAR-10 epochs, so weight decay has far less time to act: quick mode
multiplies each weight decay by :data:`QUICK_WD_SCALE` = 200 (the records keep the paper-scale labels and
the factor).
Full mode: the paper's CIFAR-10 setting (ResNet-18, 800 epochs, batch 512): about 10 GPU-hours per run on
an A100-class GPU (15 runs for the sweep), weeks on a CPU; it needs CIFAR-10 (downloaded by torchvision).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from papercommon.metrics import knn_accuracy
from papercommon.reproduce import Claim, reproduction

from phinet.config import ModelConfig, TrainConfig
from phinet.data import class_split, load_images, split_tasks
from phinet.dynamics import FlowParams, aligned_init, critical_eta, eigen_flow, matrix_flow
from phinet.monitor import CollapseMonitor
from phinet.train import Trainer

WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 5e-4, 1e-3)
SSL_MODELS = ("simsiam", "phinet", "xphinet")
PAPER_STEPS = 800 * (50_000 // 512)          # 800 CIFAR-10 epochs at batch 512
PAPER_LR = 0.03 * 512 / 256
QUICK_WD_SCALE = 200.0
"""Quick mode multiplies each weight decay by this. Matching the paper's total shrinkage lr * wd * T exactly
(a factor ~700 at 176 steps) collapsed SimSiam *and* PhiNet already at wd = 5e-4 in a pilot run (test std of z/|z|
0.000 for both), unlike the paper where 5e-4 is the healthy default; x200 keeps 5e-4 healthy and puts 1e-3 at
the edge of collapse (pilot: all three models collapse or nearly so at x200 * 1e-3 = 0.2)."""


def _settings(quick: bool) -> dict:
    if quick:
        return dict(data="digits", seeds=(0,), epochs=16, batch_size=128, base_lr=0.06, warmup_epochs=2, knn_k=20,
                    model=dict(backbone="cnn_small", in_channels=1, image_size=8, cnn_width=16, proj_dim=64,
                               proj_hidden=128, pred_hidden=16))
    return dict(data="cifar10", seeds=(1234,), epochs=800, batch_size=512, base_lr=0.03, warmup_epochs=10, knn_k=200,
                model=dict(backbone="resnet18_cifar", in_channels=3, image_size=32))


def _save(out: Path, name: str, obj: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    p = out / f"{name}.json"
    p.write_text(json.dumps(obj, indent=1))
    return p


def _plot(path: Path, xs, series: dict[str, list[float]], xlabel: str, ylabel: str, logx: bool = False,
          hline: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for k, ys in series.items():
        ax.plot(xs, ys, marker="o", label=k)
    if hline is not None:
        ax.axhline(hline, color="grey", ls="--", lw=0.8, label="1/sqrt(d)")
    if logx:
        ax.set_xscale("symlog", linthresh=1e-5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_weight_decay(quick: bool = True, out: Path | str = "reproductions/phinet", models=SSL_MODELS,
                     weight_decays=WEIGHT_DECAYS, progress: bool = False) -> dict:
    """Train each model at each weight decay; return {model: {wd: {knn_acc, collapse_std, ...}}}."""
    st = _settings(quick)
    X, y = load_images(st["data"], "train")
    Xt, yt = load_images(st["data"], "test")
    steps = st["epochs"] * (X.shape[0] // st["batch_size"])
    lr = st["base_lr"] * st["batch_size"] / 256
    exposure_ratio = PAPER_LR * PAPER_STEPS / (lr * steps)
    wd_scale = QUICK_WD_SCALE if quick else 1.0
    res: dict = {"settings": st, "steps": steps, "wd_scale": wd_scale, "exposure_ratio": exposure_ratio, "runs": {}}
    for m in models:
        res["runs"][m] = {}
        for wd in weight_decays:
            rows = []
            for seed in st["seeds"]:
                cm = CollapseMonitor()
                tc = TrainConfig(epochs=st["epochs"], batch_size=st["batch_size"], base_lr=st["base_lr"],
                                 warmup_epochs=st["warmup_epochs"], weight_decay=wd * wd_scale, seed=seed,
                                 knn_k=st["knn_k"])
                t0 = time.perf_counter()
                tr = Trainer(ModelConfig(model=m, **st["model"]), tc, callbacks=[cm], progress=progress)
                tr.fit(X)
                r = tr.evaluate(X, y, Xt, yt)
                r.update(seed=seed, train_collapse_std=cm.value, seconds=time.perf_counter() - t0)
                rows.append(r)
            res["runs"][m][str(wd)] = {
                "knn_acc": sum(r["knn_acc"] for r in rows) / len(rows),
                "collapse_std": sum(r["collapse_std"] for r in rows) / len(rows),
                "healthy_std": rows[0]["healthy_std"], "per_seed": rows}
    out = Path(out)
    _save(out, "weight_decay_runs", res)
    for key, lab in (("knn_acc", "kNN accuracy"), ("collapse_std", "std of normalised z")):
        _plot(out / f"weight_decay_{key}.png", list(weight_decays),
              {m: [res["runs"][m][str(w)][key] for w in weight_decays] for m in models},
              "weight decay (paper scale)", lab, logx=True,
              hline=res["runs"][models[0]][str(weight_decays[0])]["healthy_std"] if key == "collapse_std" else None)
    return res


@reproduction("weight-decay", "kNN accuracy and collapse gauge vs weight decay: SimSiam vs PhiNet vs X-PhiNet")
def weight_decay(quick: bool, out: Path) -> list[Claim]:
    res = run_weight_decay(quick, out)
    runs = res["runs"]
    acc = {m: [runs[m][str(w)]["knn_acc"] for w in WEIGHT_DECAYS] for m in SSL_MODELS}
    std = {m: [runs[m][str(w)]["collapse_std"] for w in WEIGHT_DECAYS] for m in SSL_MODELS}
    healthy = runs["simsiam"][str(WEIGHT_DECAYS[0])]["healthy_std"]
    collapsed = {m: sum(s < 0.5 * healthy for s in std[m]) for m in SSL_MODELS}
    worst = {m: min(acc[m]) for m in SSL_MODELS}
    spread = {m: max(acc[m]) - min(acc[m]) for m in SSL_MODELS}
    setting = (f"{res['settings']['data']}, {res['steps']} steps, wd x{res['wd_scale']:.0f}, "
               f"seeds {list(res['settings']['seeds'])}")
    claims = [Claim("Fig. 6", f"kNN acc at wd={w:g} (SimSiam / PhiNet / X-PhiNet)", "PhiNet >= SimSiam",
                    " / ".join(f"{acc[m][i]:.3f}" for m in SSL_MODELS), holds=None, note=setting)
              for i, w in enumerate(WEIGHT_DECAYS)]
    claims += [
        Claim("Fig. 6", "worst kNN acc over the wd sweep (SimSiam / PhiNet / X-PhiNet)",
              "PhiNet's worst > SimSiam's worst", " / ".join(f"{worst[m]:.3f}" for m in SSL_MODELS),
              holds=worst["phinet"] > worst["simsiam"], note=setting),
        Claim("Fig. 6", "kNN acc spread max-min over wd (SimSiam / PhiNet / X-PhiNet)", "PhiNet's < SimSiam's",
              " / ".join(f"{spread[m]:.3f}" for m in SSL_MODELS), holds=spread["phinet"] < spread["simsiam"],
              note=setting),
        Claim("Sec. 5.1", "wd settings collapsed (test std(z/|z|) < 0.5/sqrt(d)) (SimSiam / PhiNet / X-PhiNet)",
              "SimSiam >= PhiNet", " / ".join(str(collapsed[m]) for m in SSL_MODELS),
              holds=collapsed["simsiam"] >= collapsed["phinet"],
              note="std per wd: " + "; ".join(f"{m}: " + ",".join(f"{s:.3f}" for s in std[m]) for m in SSL_MODELS)
              + f"; healthy 1/sqrt(d) = {healthy:.3f}"),
    ]
    return claims


def run_continual(quick: bool = True, out: Path | str = "reproductions/phinet", models=SSL_MODELS,
                  progress: bool = False) -> dict:
    """Split-{digits | CIFAR-10}: 5 tasks of 2 classes in sequence, kNN accuracy matrix and forgetting."""
    st = _settings(quick)
    X, y = load_images(st["data"], "train")
    Xt, yt = load_images(st["data"], "test")
    tasks = split_tasks(10, 2)
    epochs = 16 if quick else 200
    bs = 64 if quick else 256
    res: dict = {"settings": st, "tasks": tasks, "epochs_per_task": epochs, "batch_size": bs, "runs": {}}
    for m in models:
        per_seed = []
        for seed in st["seeds"]:
            tc = TrainConfig(epochs=epochs, batch_size=bs, base_lr=st["base_lr"], warmup_epochs=min(2, epochs),
                             weight_decay=5e-4 * (30 if quick else 1), seed=seed, knn_k=st["knn_k"])
            tr = Trainer(ModelConfig(model=m, **st["model"]), tc, progress=progress)
            A = torch.full((len(tasks), len(tasks)), float("nan"))      # A[k, t]: acc on task t after task k
            seen_acc = []

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
            forgetting = sum((A[t:T - 1, t].max() - A[T - 1, t]).item() for t in range(T - 1)) / (T - 1)
            per_seed.append({"acc_matrix": A.tolist(), "seen_acc": seen_acc, "forgetting": forgetting,
                             "final_avg_acc": A[T - 1].mean().item()})
        res["runs"][m] = {"forgetting": sum(r["forgetting"] for r in per_seed) / len(per_seed),
                          "final_avg_acc": sum(r["final_avg_acc"] for r in per_seed) / len(per_seed),
                          "final_seen_acc": sum(r["seen_acc"][-1] for r in per_seed) / len(per_seed),
                          "per_seed": per_seed}
    out = Path(out)
    _save(out, "continual_runs", res)
    _plot(out / "continual_seen_acc.png", list(range(1, len(tasks) + 1)),
          {m: res["runs"][m]["per_seed"][0]["seen_acc"] for m in models}, "tasks seen", "kNN acc, all seen classes")
    return res


@reproduction("continual", "Split tasks in sequence: forgetting of SimSiam, PhiNet and X-PhiNet")
def continual(quick: bool, out: Path) -> list[Claim]:
    res = run_continual(quick, out)
    r = res["runs"]
    note = (f"Split-{res['settings']['data']} 5x2 classes, {res['epochs_per_task']} epochs/task, task-wise kNN; "
            "forgetting = mean over t<T of max_{t<=k<T} A[k,t] - A[T,t]")
    least = min(SSL_MODELS, key=lambda m: r[m]["forgetting"])
    return [
        Claim("Table 3", "forgetting (SimSiam / PhiNet / X-PhiNet)", "X-PhiNet least",
              " / ".join(f"{r[m]['forgetting']:.3f}" for m in SSL_MODELS), holds=least == "xphinet", note=note),
        Claim("Table 3", "final average task accuracy (SimSiam / PhiNet / X-PhiNet)", "X-PhiNet best",
              " / ".join(f"{r[m]['final_avg_acc']:.3f}" for m in SSL_MODELS),
              holds=max(SSL_MODELS, key=lambda m: r[m]["final_avg_acc"]) == "xphinet", note=note),
        Claim("Sec. 5.3", "kNN acc over all 10 classes after the last task (SimSiam / PhiNet / X-PhiNet)",
              "PhiNets > SimSiam", " / ".join(f"{r[m]['final_seen_acc']:.3f}" for m in SSL_MODELS),
              holds=min(r["phinet"]["final_seen_acc"], r["xphinet"]["final_seen_acc"]) > r["simsiam"]["final_seen_acc"],
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
    _save(out, "dynamics", res)
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


REPRODUCTIONS = [weight_decay, continual, linear_dynamics]


def results_table(results_dir: str | Path) -> str:
    """The README's reproduction table, rendered from the committed records in ``results_dir``."""
    rows = ["| Reproduction | Claim | Metric | Paper | Ours | Δ / holds | seeds | record |", "|---|---|---|---|---|---|---|---|"]
    results_dir = Path(results_dir)
    for r in REPRODUCTIONS:
        path = results_dir / f"{r.name}.json"
        if not path.exists():
            rows.append(f"| {r.name} | - | - | - | not run | - | - | - |")
            continue
        rec = json.loads(path.read_text())
        seeds = "1" if rec["config"].get("quick", True) else "1 (paper seed)"
        if rec["metrics"].get("error"):
            rows.append(f"| {r.name} | - | - | - | ERROR: {rec['metrics']['error']} | - | - | `results/{path.name}` |")
        for c in rec["metrics"]["claims"]:
            holds = {True: "holds", False: "does not hold", None: "-"}[c["holds"]]
            try:
                delta = f"{float(c['ours']) - float(c['paper']):+.3f}; {holds}"
            except (TypeError, ValueError):
                delta = holds
            rows.append(f"| {r.name} | {c['paper_ref']} | {c['metric']} | {c['paper']} | {c['ours']} | {delta} | "
                        f"{seeds} | `results/{path.name}` |")
    return "\n".join(rows)
