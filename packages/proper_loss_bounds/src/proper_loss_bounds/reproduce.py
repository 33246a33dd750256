"""Reproductions registered with ``papercommon reproduce proper_loss_bounds``.

* ``psi-slope``: the best regret bound ψ(r) of a zoo of losses as r -> 0: log-log slope 1/2 for
  strongly proper losses (with the constant sqrt(2/λ)), slower for strictly-but-not-strongly proper
  ones (Tsallis α = 3: 1/3; quartic Bayes risk: 1/4), no decay for the 0-1 loss. A plot.
* ``theorems``: the paper's two statements checked on every loss of the zoo.
* ``learning-curve``: softmax regression with known p(y|x): E‖q̂ - p‖ against E[R]; p(x) is interior, so
  the typical exponent is 1/2 for every loss (Tsallis-3 included; the exponents that differ are psi-slope's),
  and ‖q̂ - p‖ <= sqrt(2R/λ) at every test point. A plot.

Quick mode runs in well under 2 minutes on one CPU thread; ``--full`` uses larger searches and more
sample sizes and seeds. Each returns :class:`papercommon.reproduce.Claim` s and writes a JSON record
(under ``out``) with the full numbers.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from papercommon.reproduce import Claim, reproduction

from proper_loss_bounds.bounds import (
    check_half_order,
    check_nonvacuous_iff_strict,
    regret_bound,
    strong_properness_constant,
)
from proper_loss_bounds.config import LearningCurveConfig, RegretBoundConfig
from proper_loss_bounds.experiments import learning_curve
from proper_loss_bounds.losses import get_loss

PAPER = "Bao & Takatsu 2407.10417"
STRONG = ("log", "brier", "spherical", "tsallis-1.5")
EXPECTED_SLOPE = {"tsallis-3": 1 / 3, "quartic": 1 / 4}


@contextlib.contextmanager
def _threads(n: int):
    """Small tensors: one thread avoids oversubscription on a shared CPU (20x faster there)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _save_json(out: Path, name: str, payload: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.data.json"
    path.write_text(json.dumps(payload, indent=1))
    return path


def psi_config(quick: bool) -> RegretBoundConfig:
    if quick:
        return RegretBoundConfig(num_r=11, num_candidates=1024, refine_rounds=6)
    return RegretBoundConfig(num_r=16, r_min=1e-8, num_candidates=4096, refine_rounds=8)


def run_psi_slope(cfg: RegretBoundConfig, norms=(2.0,), progress: bool = True) -> dict:
    """ψ(r) on ``cfg``'s grid for every loss and norm, with slopes and the strong-properness prediction."""
    from tqdm.auto import tqdm

    r = np.logspace(math.log10(cfg.r_min), math.log10(cfg.r_max), cfg.num_r)
    rows = {}
    for s in norms:
        for name in tqdm(cfg.losses, desc=f"psi(r), s={s:g}", disable=not progress):
            loss = get_loss(name)
            b = regret_bound(loss, r, s=s, num_classes=cfg.num_classes, num_candidates=cfg.num_candidates,
                             refine_rounds=cfg.refine_rounds, seed=cfg.seed)
            lam = strong_properness_constant(loss, s=s, num_classes=cfg.num_classes)
            pred = np.sqrt(2 * r / lam) if lam > 0 else np.full_like(r, np.inf)
            rows[f"{name}@s={s:g}"] = {
                "loss": name, "s": s, "r": r.tolist(), "psi": b.psi.tolist(),
                "slope": b.slope(r_max=cfg.fit_r_max), "lambda": lam,
                "psi_over_strong_bound": (b.psi / pred).tolist(),
                "argmax_p": b.p[0].tolist(), "argmax_q": b.q[0].tolist(),
            }
    return {"config": cfg.to_dict(), "norms": list(norms), "rows": rows}


def plot_psi(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norms = result["norms"]
    fig, axes = plt.subplots(1, len(norms), figsize=(6 * len(norms), 4.5), squeeze=False)
    for ax, s in zip(axes[0], norms):
        for _key, row in result["rows"].items():
            if row["s"] != s:
                continue
            ax.loglog(row["r"], row["psi"], marker="o", ms=3, label=f"{row['loss']} (slope {row['slope']:.2f})")
        r = np.array(next(iter(result["rows"].values()))["r"])
        ax.loglog(r, np.sqrt(r), "k--", lw=1, label="sqrt(r)")
        ax.set_xlabel("surrogate regret r")
        ax.set_ylabel(f"best bound psi(r) = sup ||p - q||_{s:g}")
        ax.set_title(f"Best regret bound, K={result['config']['num_classes']}, s={s:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@reproduction("psi-slope", "Log-log slope of the best regret bound psi(r) as r -> 0 across the loss zoo")
def psi_slope(quick: bool, out: Path) -> list[Claim]:
    cfg = psi_config(quick)
    with _threads(1):
        res = run_psi_slope(cfg, norms=(2.0,) if quick else (1.0, 2.0, math.inf))
    _save_json(out, "psi-slope", res)
    plot_psi(res, out / "psi-slope.png")
    claims = []
    for _key, row in res["rows"].items():
        name, slope, s = row["loss"], row["slope"], row["s"]
        psi_min = row["psi"][0]
        note = f"K={cfg.num_classes}, s={s:g}, fit r in [{cfg.r_min:g}, {cfg.fit_r_max:g}]"
        if name in STRONG:
            claims.append(Claim("Result (ii) + strong properness", f"{name}: slope of log psi vs log r (s={s:g})", 0.5,
                                slope, holds=abs(slope - 0.5) <= 0.03, note=note))
            ratio = row["psi_over_strong_bound"][0]
            claims.append(Claim("Sec. 2 (lambda-strong properness)",
                                f"{name}: psi(r_min) / sqrt(2 r_min / lambda) (s={s:g})", "<= 1, -> 1",
                                ratio, holds=0.9 <= ratio <= 1 + 1e-6,
                                note=f"lambda={row['lambda']:.4g}; 1 = the strong-properness constant is tight"))
        elif name in EXPECTED_SLOPE:
            exp = EXPECTED_SLOPE[name]
            claims.append(Claim("Result (ii): strict, not strong", f"{name}: slope of log psi vs log r (s={s:g})",
                                f"< 0.5 (theory {exp:.3g})", slope,
                                holds=slope < 0.47 and abs(slope - exp) <= 0.03 and psi_min < 0.1, note=note))
        elif name == "zero-one":
            claims.append(Claim("Result (i): only if", f"zero-one: psi(r_min) (no decay) (s={s:g})", "> 0 (vacuous)",
                                psi_min, holds=psi_min > 0.3 and abs(slope) < 0.02,
                                note=note + f"; slope {slope:.3g}"))
    return claims


ZOO = ("log", "brier", "spherical", "pseudo-spherical-3", "tsallis-0.5", "tsallis-1.5", "tsallis-3",
       "binary-logistic", "binary-exponential", "quartic", "zero-one")


@reproduction("theorems", "Strictly proper <=> non-vacuous bound, and psi(r) >= c sqrt(r), on every loss of the zoo")
def theorems(quick: bool, out: Path) -> list[Claim]:
    n_cand = 512 if quick else 4096
    rows = {}
    with _threads(1):
        for name in ZOO:
            a = check_nonvacuous_iff_strict(name, num_candidates=n_cand)
            b = check_half_order(name, num_candidates=n_cand)
            rows[name] = {"iff": {"holds": a.holds, **a.details}, "half_order": {"holds": b.holds, **b.details}}
    _save_json(out, "theorems", rows)
    agree = [n for n, r in rows.items() if r["iff"]["holds"]]
    strict = [n for n, r in rows.items() if r["iff"]["strictly_proper"]]
    half = [n for n in strict if rows[n]["half_order"]["holds"]]
    return [
        Claim("Result (i)", "losses where (strictly proper) == (psi(r) -> 0)", f"all {len(ZOO)}",
              len(agree), holds=len(agree) == len(ZOO),
              note="strictness from minimising L(.;p) over the simplex; psi from the ray search, r=1e-10"),
        Claim("Result (ii)", "strictly proper losses with psi(r) >= c sqrt(r) certified and slope <= 1/2",
              f"all {len(strict)}", len(half), holds=len(half) == len(strict),
              note="certificate at an interior point: D(p, p+t u)=r solved exactly; r in [1e-8, 1e-4]"),
        Claim("Result (i)", "zero-one: strictly proper / non-vacuous", "no / no",
              f"{rows['zero-one']['iff']['strictly_proper']} / {rows['zero-one']['iff']['nonvacuous']}",
              holds=not rows["zero-one"]["iff"]["strictly_proper"] and not rows["zero-one"]["iff"]["nonvacuous"]),
    ]


def curve_config(quick: bool) -> LearningCurveConfig:
    if quick:
        return LearningCurveConfig(sample_sizes=(250, 1000, 4000, 16000), seeds=(0, 1, 2), num_test=10000,
                                   losses=("log", "brier", "spherical", "tsallis-1.5", "tsallis-3"))
    return LearningCurveConfig(sample_sizes=(125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000),
                               seeds=(0, 1, 2, 3), losses=("log", "brier", "spherical", "tsallis-1.5", "tsallis-3"))


def plot_curve(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for i, (name, f) in enumerate(res["fits"].items()):
        color = f"C{i}"
        reg, err = np.array(f["mean_regret"]), np.array(f["mean_err"])
        ax.loglog(reg, err, "o-", color=color, label=f"{name}: exponent {f['exponent']:.2f}")
        if math.isfinite(f["predicted_constant"]):
            ax.loglog(reg, f["predicted_constant"] * np.sqrt(reg), "--", color=color, lw=1,
                      label=f"{name}: sqrt(2R/lambda), lambda={f['lambda']:.3g}")
    s = res["config"]["norm"]
    ax.set_xlabel("E[surrogate regret R(q_hat; p)]")
    ax.set_ylabel(f"E ||q_hat - p||_{s:g}")
    ax.set_title("Softmax regression, growing n (K={}, d={})".format(res["config"]["num_classes"], res["config"]["dim"]))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@reproduction("learning-curve", "Softmax regression with known p(y|x): ||q_hat - p|| against the surrogate regret")
def learning_curve_repro(quick: bool, out: Path) -> list[Claim]:
    cfg = curve_config(quick)
    with _threads(1):
        res = learning_curve(cfg)
    _save_json(out, "learning-curve", res)
    plot_curve(res, out / "learning-curve.png")
    claims = []
    for name, f in res["fits"].items():
        note = f"n={cfg.sample_sizes}, seeds={len(cfg.seeds)}, K={cfg.num_classes}, d={cfg.dim}, s={cfg.norm:g}"
        # issue 19: every row has a verdict that a wrong theory could fail. Here p(x) is interior, where
        # every loss of the list has a positive-definite Hessian, so the *typical* rate is locally quadratic:
        # exponent 1/2 for all of them, Tsallis-3 included. The paper's worst-case exponents, which differ
        # between losses (Tsallis-3: 1/3, quartic: 1/4), are tested against each loss's own prediction in
        # psi-slope. The strong-properness check is pointwise (every test point), not through E||q-p|| <=
        # sqrt(E ||q-p||^2), which Jensen's inequality makes automatic; it fails if lambda is overstated.
        claims.append(Claim("Result (ii): order 1/2 (p interior, locally quadratic)",
                            f"{name}: fitted exponent of E||q-p|| vs E[R]", 0.5, f["exponent"],
                            holds=abs(f["exponent"] - 0.5) <= 0.06, note=note))
        if name in STRONG:
            claims.append(Claim("Sec. 2 (lambda-strong properness), pointwise",
                                f"{name}: max over test points of ||q-p|| / sqrt(2 R / lambda)", "<= 1",
                                f["max_bound_ratio"], holds=f["max_bound_ratio"] <= 1 + 1e-9,
                                note=f"lambda={f['lambda']:.4g}; max_n E||q-p|| / sqrt(E R) = "
                                     f"{max(f['err_over_sqrt_regret']):.4f} vs sqrt(2/lambda) = "
                                     f"{f['predicted_constant']:.4g} (implied by Jensen, no verdict)"))
    return claims


REPRODUCTIONS = [psi_slope, theorems, learning_curve_repro]
