"""Reproductions registered with ``papercommon reproduce``.

``alpha-sweep``: accuracy against the fraction of malicious clients alpha under each attack, LiD-FL's best
listed model against the single-model aggregators (paper, Sec. 5, Tables 1-2 / Fig. 2: past alpha = 0.5
the single-model aggregators break down under most attacks while LiD-FL stays close to clean accuracy).

Quick mode (CPU, ~2 minutes): digits, 15 clients, alpha in {0.2, 0.6, 0.8}, 30 rounds for the baselines and
150 for LiD-FL (one client trains per LiD-FL round, all 15 per baseline round: LiD-FL still does fewer local
trainings, 150 vs 450), five aggregators.
Full mode: 35 clients, alpha in {0.2, 0.4, 0.6, 0.7, 0.8}, all seven aggregators, 500 rounds.
Every run uses the official local-training settings (25 steps, batch 32, lr 0.01; LiD-FL momentum 0.9).

CLI: ``python -m listdec_fl sweep --quick --out results/`` or ``papercommon reproduce listdec_fl --quick``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from papercommon.figures import figure
from papercommon.records import write_record
from papercommon.reproduce import Claim, reproduction

from listdec_fl.config import ATTACKS, AttackConfig, BaselineConfig, ListDecConfig, SimConfig
from listdec_fl.data import FederatedData, load_federated
from listdec_fl.simulator import run_baselines, run_listdec_many

ATTACK_LIST = [a for a in ATTACKS if a != "none"]


def sweep_settings(quick: bool, dataset: str = "digits") -> dict[str, Any]:
    """Quick: 15 clients, 3 seeds, LiD-FL 400 one-client rounds at alpha 0.6 / 0.8 (alpha = 0.8 has plateaued
    by then, checked in the record), baselines 30 all-client rounds at alpha 0.2 / 0.6 / 0.8."""
    if quick:
        return {"dataset": dataset, "n_clients": 15, "alphas": [0.2, 0.6, 0.8], "lidfl_alphas": [0.6, 0.8],
                "rounds": 30, "eval_every": 30, "lidfl_rounds": 400, "trusted_size": 50, "seeds": 3,
                "aggregators": ["median", "trimmed_mean", "geomed", "krum"], "attacks": ATTACK_LIST,
                "seed": 0, "model": "logreg"}
    return {"dataset": dataset, "n_clients": 35, "alphas": [0.2, 0.4, 0.6, 0.7, 0.8], "rounds": 500, "eval_every": 50,
            "lidfl_rounds": 1500, "trusted_size": 50, "seeds": 3,
            "aggregators": ["fedavg", "median", "trimmed_mean", "geomed", "krum", "multikrum", "normclip"],
            "attacks": ATTACK_LIST, "seed": 0, "model": "logreg"}


def alpha_sweep(settings: dict[str, Any], *, progress: bool = True, device: str = "cpu",
                data: FederatedData | None = None) -> dict[str, Any]:
    """Run the sweep for ONE seed (``settings["seed"]``): a trusted set of ``trusted_size`` test samples is
    held out (for every method), LiD-FL reports three selection rules: ``lidfl`` (oracle: best listed model
    by test accuracy), ``lidfl_voted`` (most-voted model) and ``lidfl_trusted`` (best on the trusted set).

    ``data`` optionally replaces ``load_federated(settings["dataset"], ...)``.
    """
    s = settings
    data = data if data is not None else load_federated(s["dataset"], s["n_clients"], seed=s["seed"])
    data, trusted = data.hold_out_test(s.get("trusted_size", 50), seed=s["seed"])
    base = dict(dataset=s["dataset"], n_clients=s["n_clients"], rounds=s["rounds"], eval_every=s["eval_every"],
                seed=s["seed"], model=s["model"])
    sims = {(atk, a): SimConfig(alpha=a, attack=AttackConfig(name=atk), **base)
            for atk in s["attacks"] for a in s["alphas"]}
    lid_alphas = s.get("lidfl_alphas", s["alphas"])
    lid_rounds = s.get("lidfl_rounds", s["rounds"])
    lid_keys = [(atk, a) for atk in s["attacks"] for a in lid_alphas]
    lid_runs = [(SimConfig(alpha=a, attack=AttackConfig(name=atk), **{**base, "rounds": lid_rounds,
                                                                      "eval_every": max(1, lid_rounds // 10)}),
                 ListDecConfig(alpha=a)) for atk, a in lid_keys]
    lid = run_listdec_many(lid_runs, data, progress=progress, device=device, trusted=trusted)
    clean_runs = [(SimConfig(alpha=0.0, attack=AttackConfig(name="none"), **base), BaselineConfig(aggregator="fedavg"))]
    base_runs = clean_runs + [(sim, BaselineConfig(aggregator=ag)) for sim in sims.values() for ag in s["aggregators"]]
    res = run_baselines(base_runs, data, progress=progress, device=device)
    out: dict[str, Any] = {"settings": s, "clean": res[0].final_accuracy, "clean_curve": res[0].accuracy,
                           "lidfl": {}, "lidfl_voted": {}, "lidfl_trusted": {}, "lidfl_curve": {}, "lidfl_rounds": [],
                           "lidfl_kept": {}, "baselines": {}}
    for (atk, a), r in zip(lid_keys, lid):
        out["lidfl"].setdefault(atk, {})[str(a)] = r.final_accuracy
        out["lidfl_voted"].setdefault(atk, {})[str(a)] = r.extra["voted_accuracy"][-1]
        out["lidfl_trusted"].setdefault(atk, {})[str(a)] = r.extra["trusted_accuracy"][-1]
        out["lidfl_curve"].setdefault(atk, {})[str(a)] = r.accuracy
        out["lidfl_kept"].setdefault(atk, {})[str(a)] = r.extra["new_kept_rate"]
        out["lidfl_rounds"] = r.rounds
    it = iter(res[1:])
    for atk, a in sims:
        for ag in s["aggregators"]:
            out["baselines"].setdefault(ag, {}).setdefault(atk, {})[str(a)] = next(it).final_accuracy
    out["seconds"] = {"lidfl": sum(r.seconds for r in lid), "baselines": sum(r.seconds for r in res)}
    return out


def _ms(xs: list[float]) -> tuple[float, float]:
    t = torch.tensor(xs, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(xs) > 1 else 0.0


def aggregate_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every cell: ``{key: {attack: {alpha: [mean, std]}}}``."""
    s = per_seed[0]["settings"]
    agg: dict[str, Any] = {"settings": {**s, "seed_list": [p["settings"]["seed"] for p in per_seed]},
                           "clean": _ms([p["clean"] for p in per_seed])}
    for key in ("lidfl", "lidfl_voted", "lidfl_trusted"):
        agg[key] = {atk: {a: _ms([p[key][atk][a] for p in per_seed]) for a in per_seed[0][key][atk]}
                    for atk in per_seed[0][key]}
    agg["baselines"] = {ag: {atk: {a: _ms([p["baselines"][ag][atk][a] for p in per_seed]) for a in cells}
                             for atk, cells in v.items()} for ag, v in per_seed[0]["baselines"].items()}
    agg["lidfl_rounds"] = per_seed[0]["lidfl_rounds"]
    agg["lidfl_curve"] = {atk: {a: [_ms([p["lidfl_curve"][atk][a][i] for p in per_seed])[0]
                                    for i in range(len(agg["lidfl_rounds"]))] for a in c}
                          for atk, c in per_seed[0]["lidfl_curve"].items()}
    return agg


def plot_sweep(out: dict[str, Any], path: Path) -> None:
    """Accuracy (mean over seeds) vs alpha per attack: LiD-FL's three selection rules and each aggregator."""
    s = out["settings"]
    lid_alphas = s.get("lidfl_alphas", s["alphas"])
    with figure(path, nrows=2, ncols=3, figsize=(13, 7), sharey=True,
                title=f"LiD-FL vs single-model aggregators, {s['dataset']}, {s['n_clients']} clients, "
                      f"mean of {len(s.get('seed_list', [0]))} seeds") as axes:
        for ax, atk in zip(axes.flat, s["attacks"]):
            for key, style, lab in (("lidfl", "k-o", "LiD-FL oracle (best listed)"),
                                    ("lidfl_trusted", "b-s", "LiD-FL trusted-set pick"),
                                    ("lidfl_voted", "r-^", "LiD-FL most voted")):
                ax.plot(lid_alphas, [out[key][atk][str(a)][0] for a in lid_alphas], style, lw=2, label=lab)
            for ag in s["aggregators"]:
                ax.plot(s["alphas"], [out["baselines"][ag][atk][str(a)][0] for a in s["alphas"]], "--.", label=ag)
            ax.axhline(out["clean"][0], color="gray", ls=":", label="FedAvg, no attack")
            ax.set_title(atk)
            ax.set_xlabel("fraction of malicious clients alpha")
            ax.set_ylim(0, 1)
            ax.set_ylabel("test accuracy")


def _fmt(ms: tuple[float, float]) -> str:
    return f"{ms[0]:.3f} ± {ms[1]:.3f}"


def sweep_claims(out: dict[str, Any]) -> list[Claim]:
    """Verdicts from the seed-aggregated sweep; a verdict needs its margin to exceed the seed spread."""
    s = out["settings"]
    n_seeds = len(s.get("seed_list", [s["seed"]]))
    clean = out["clean"]
    lid_alphas = [a for a in s.get("lidfl_alphas", s["alphas"]) if a > 0.5]
    high = [a for a in s["alphas"] if a > 0.5 and a in lid_alphas]
    cells = [(atk, str(a)) for atk in s["attacks"] for a in lid_alphas]
    note = (f"{s['dataset']}, {s['n_clients']} clients, logreg, {n_seeds} seeds (mean ± std); LiD-FL "
            f"{s.get('lidfl_rounds', s['rounds'])} one-client rounds, baselines {s['rounds']} all-client rounds; "
            f"trusted set {s.get('trusted_size', 50)} test samples held out of every test set; clean FedAvg {_fmt(clean)}")

    def worst(key: str) -> tuple[str, tuple[float, float]]:
        atk, a = min(cells, key=lambda c: out[key][c[0]][c[1]][0])
        return f"{atk}, alpha={a}", out[key][atk][a]

    claims = []
    for key, label in (("lidfl", "oracle: best listed model by TEST accuracy"),
                       ("lidfl_trusted", "non-oracle: listed model best on the trusted set")):
        where, (m, sd) = worst(key)
        claims.append(Claim("Sec. 5, Tab. 1-2", f"LiD-FL {label}, worst cell over attacks x alpha in {lid_alphas}",
                            "close to clean accuracy (within 10 points)", f"{m:.3f} ± {sd:.3f} ({where})",
                            holds=m - sd >= clean[0] - 0.10, note=note + "; holds = mean - std within 10 points of clean"))
    where, (m, sd) = worst("lidfl_voted")
    claims.append(Claim("Sec. 4 (the output is a list)", f"LiD-FL non-oracle: most-voted model, worst cell over "
                        f"attacks x alpha in {lid_alphas}", "not a safe pick under a malicious majority (hence a list)",
                        f"{m:.3f} ± {sd:.3f} ({where})", holds=m + sd < clean[0] - 0.30,
                        note=note + "; holds = mean + std more than 30 points below clean"))
    gaps = [out["lidfl"][atk][a][0] - out["lidfl_trusted"][atk][a][0] for atk, a in cells]
    g_sd = max(out["lidfl_trusted"][atk][a][1] for atk, a in cells)
    claims.append(Claim("Sec. 6 (discussion: pick from the list with a small trusted validation set)",
                        "largest gap oracle - trusted-set pick over the LiD-FL cells (mean over seeds)",
                        "a small trusted set recovers the good listed model", round(max(gaps), 4),
                        holds=max(gaps) <= 0.03, note=note + f"; holds = gap <= 3 points (largest std {g_sd:.3f})"))
    # alpha = 0.8 convergence: the oracle curve (mean over seeds) gains < 1 point over the last 30% of rounds
    if 0.8 in lid_alphas:
        rounds = out["lidfl_rounds"]
        i0 = next(i for i, r in enumerate(rounds) if r >= 0.7 * rounds[-1])
        gains = {atk: out["lidfl_curve"][atk]["0.8"][-1] - out["lidfl_curve"][atk]["0.8"][i0] for atk in s["attacks"]}
        mx = max(gains.values())
        claims.append(Claim("Sec. 5 (alpha = 0.8 row)", f"largest oracle-accuracy gain over rounds {rounds[i0]}-{rounds[-1]} "
                            "at alpha = 0.8 (mean over seeds): the alpha = 0.8 row has converged",
                            "converged (gain < 1 point)", round(mx, 4), holds=mx < 0.01,
                            note=note + "; per attack " + ", ".join(f"{k} {v:+.3f}" for k, v in gains.items())))
    broken, total = 0, 0
    for atk in s["attacks"]:
        for a in high:
            total += 1
            best_single = max(out["baselines"][ag][atk][str(a)][0] + out["baselines"][ag][atk][str(a)][1]
                              for ag in s["aggregators"])
            lm, lsd = out["lidfl_trusted"][atk][str(a)]
            broken += best_single < lm - lsd - 0.10
    claims.append(Claim("Sec. 5, Tab. 1-2", f"share of (attack, alpha in {high}) cells where EVERY single-model "
                        "aggregator (mean + std) is > 10 points below LiD-FL's trusted pick (mean - std)",
                        "most attacks break the single-model aggregators", round(broken / max(total, 1), 3),
                        holds=broken / max(total, 1) > 0.5, note=note))
    low = min(s["alphas"])
    rob = [(atk, max(out["baselines"][ag][atk][str(low)][0] for ag in s["aggregators"] if ag != "fedavg"))
           for atk in s["attacks"]]
    atk, v = min(rob, key=lambda x: x[1])
    claims.append(Claim("Sec. 5 (sanity)", f"best robust single-model aggregator, worst attack ({atk}), alpha = {low} "
                        "(mean over seeds)", "robust aggregators work under a minority", round(v, 4),
                        holds=v >= clean[0] - 0.10, note=note))
    return claims


def run_sweep(settings: dict[str, Any], *, progress: bool = True, device: str = "cpu") -> dict[str, Any]:
    """``settings["seeds"]`` seeds from ``settings["seed"]``: per-seed results and their mean ± std."""
    per_seed = [alpha_sweep({**settings, "seed": settings["seed"] + i}, progress=progress, device=device)
                for i in range(settings.get("seeds", 1))]
    return {"per_seed": per_seed, **aggregate_seeds(per_seed)}


@reproduction("alpha-sweep", "Accuracy vs fraction of malicious clients: LiD-FL (oracle, trusted-set and most-voted "
              "picks) vs single-model aggregators, 3 seeds")
def alpha_sweep_repro(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the batched ops are small: extra threads only add synchronisation overhead
    try:
        settings = {**sweep_settings(quick), "seed": seed}
        res = run_sweep(settings)
    finally:
        torch.set_num_threads(threads)
    tag = "quick" if quick else "full"
    claims = sweep_claims(res)
    write_record(out, f"alpha_sweep_{tag}", config=settings,
                 metrics={**res, "claims": [c.to_dict() for c in claims]})
    plot_sweep(res, out / f"alpha_sweep_{tag}.png")
    return claims


REPRODUCTIONS = [alpha_sweep_repro]


def sweep_table(m: dict[str, Any]) -> str:
    """The README table of a seed-aggregated sweep record's metrics (mean ± std per cell)."""
    from papercommon.records import markdown_table

    s = m["settings"]
    lid_alphas = s.get("lidfl_alphas", s["alphas"])
    rows = []
    for atk in s["attacks"]:
        for a in lid_alphas:
            a = str(a)
            rows.append([atk, a, _fmt(m["lidfl"][atk][a]), _fmt(m["lidfl_trusted"][atk][a]),
                         _fmt(m["lidfl_voted"][atk][a])]
                        + [_fmt(m["baselines"][ag][atk][a]) if a in m["baselines"][ag][atk] else "-"
                           for ag in s["aggregators"]])
    return markdown_table(["attack", "α", "LiD-FL oracle", "LiD-FL trusted pick", "LiD-FL most voted",
                           *s["aggregators"]], rows)
