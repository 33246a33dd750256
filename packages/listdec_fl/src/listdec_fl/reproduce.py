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

import json
from pathlib import Path
from typing import Any

import torch
from papercommon.reproduce import Claim, reproduction

from listdec_fl.config import ATTACKS, AttackConfig, BaselineConfig, ListDecConfig, SimConfig
from listdec_fl.data import FederatedData, load_federated
from listdec_fl.simulator import run_baselines, run_listdec_many

ATTACK_LIST = [a for a in ATTACKS if a != "none"]


def sweep_settings(quick: bool, dataset: str = "digits") -> dict[str, Any]:
    if quick:
        # LiD-FL trains ONE client per round, a baseline round trains all n: 150 LiD-FL rounds are still fewer
        # client trainings than 30 baseline rounds x 15 clients (450)
        return {"dataset": dataset, "n_clients": 15, "alphas": [0.2, 0.6, 0.8], "rounds": 30, "eval_every": 15,
                "lidfl_rounds": 150,
                "aggregators": ["fedavg", "median", "trimmed_mean", "geomed", "krum"], "attacks": ATTACK_LIST,
                "seed": 0, "model": "logreg"}
    return {"dataset": dataset, "n_clients": 35, "alphas": [0.2, 0.4, 0.6, 0.7, 0.8], "rounds": 500, "eval_every": 50,
            "aggregators": ["fedavg", "median", "trimmed_mean", "geomed", "krum", "multikrum", "normclip"],
            "attacks": ATTACK_LIST, "seed": 0, "model": "logreg"}


def alpha_sweep(settings: dict[str, Any], *, progress: bool = True, device: str = "cpu",
                data: FederatedData | None = None) -> dict[str, Any]:
    """Run the sweep; returns ``{"settings", "clean", "lidfl": {attack: {alpha: acc}}, "baselines": {...}}``.

    ``data`` optionally replaces ``load_federated(settings["dataset"], ...)``.
    """
    s = settings
    data = data if data is not None else load_federated(s["dataset"], s["n_clients"], seed=s["seed"])
    base = dict(dataset=s["dataset"], n_clients=s["n_clients"], rounds=s["rounds"], eval_every=s["eval_every"],
                seed=s["seed"], model=s["model"])
    sims = {(atk, a): SimConfig(alpha=a, attack=AttackConfig(name=atk), **base)
            for atk in s["attacks"] for a in s["alphas"]}
    lid_rounds = s.get("lidfl_rounds", s["rounds"])
    lid_runs = [(SimConfig(**{**sim.to_dict(), "rounds": lid_rounds, "eval_every": max(1, lid_rounds // 10)}),
                 ListDecConfig(alpha=sim.alpha)) for sim in sims.values()]
    lid = run_listdec_many(lid_runs, data, progress=progress, device=device)
    clean_runs = [(SimConfig(alpha=0.0, attack=AttackConfig(name="none"), **base), BaselineConfig(aggregator="fedavg"))]
    base_runs = clean_runs + [(sim, BaselineConfig(aggregator=ag)) for sim in sims.values() for ag in s["aggregators"]]
    res = run_baselines(base_runs, data, progress=progress, device=device)
    out: dict[str, Any] = {"settings": s, "clean": res[0].final_accuracy, "clean_curve": res[0].accuracy,
                           "lidfl": {}, "lidfl_voted": {}, "lidfl_kept": {}, "baselines": {}}
    for (atk, a), r in zip(sims, lid):
        out["lidfl"].setdefault(atk, {})[str(a)] = r.final_accuracy
        out["lidfl_voted"].setdefault(atk, {})[str(a)] = r.extra["voted_accuracy"][-1]
        out["lidfl_kept"].setdefault(atk, {})[str(a)] = r.extra["new_kept_rate"]
    it = iter(res[1:])
    for atk, a in sims:
        for ag in s["aggregators"]:
            out["baselines"].setdefault(ag, {}).setdefault(atk, {})[str(a)] = next(it).final_accuracy
    out["seconds"] = {"lidfl": sum(r.seconds for r in lid), "baselines": sum(r.seconds for r in res)}
    return out


def plot_sweep(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = out["settings"]
    alphas = s["alphas"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharey=True)
    for ax, atk in zip(axes.flat, s["attacks"]):
        ax.plot(alphas, [out["lidfl"][atk][str(a)] for a in alphas], "k-o", lw=2.5, label="LiD-FL (best listed)")
        for ag in s["aggregators"]:
            ax.plot(alphas, [out["baselines"][ag][atk][str(a)] for a in alphas], "--.", label=ag)
        ax.axhline(out["clean"], color="gray", ls=":", label="FedAvg, no attack")
        ax.axvline(0.5, color="red", lw=0.5)
        ax.set_title(atk)
        ax.set_xlabel("fraction of malicious clients alpha")
        ax.set_ylim(0, 1)
    axes[0, 0].set_ylabel("test accuracy")
    axes[1, 0].set_ylabel("test accuracy")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"LiD-FL vs single-model aggregators, {s['dataset']}, {s['n_clients']} clients, {s['rounds']} rounds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweep_claims(out: dict[str, Any]) -> list[Claim]:
    s = out["settings"]
    clean = out["clean"]
    high = [a for a in s["alphas"] if a > 0.5]
    lid_high = [out["lidfl"][atk][str(a)] for atk in s["attacks"] for a in high]
    worst_lid = min(lid_high)
    # cells (attack, alpha > 0.5) where every single-model aggregator is > 10 points below LiD-FL
    cells, broken = 0, 0
    for atk in s["attacks"]:
        for a in high:
            cells += 1
            best_single = max(out["baselines"][ag][atk][str(a)] for ag in s["aggregators"])
            broken += best_single < out["lidfl"][atk][str(a)] - 0.10
    low = min(s["alphas"])
    robust_low = min(max(out["baselines"][ag][atk][str(low)] for ag in s["aggregators"] if ag != "fedavg")
                     for atk in s["attacks"])
    note = (f"{s['dataset']}, {s['n_clients']} clients, {s['rounds']} rounds (LiD-FL: {s.get('lidfl_rounds', s['rounds'])}"
            f" one-client rounds), logreg; clean FedAvg {clean:.3f}")
    return [
        Claim("Sec. 5, Tab. 1-2", f"LiD-FL worst accuracy over attacks x alpha in {high}", "close to clean accuracy",
              round(worst_lid, 4), holds=worst_lid >= clean - 0.10, note=note + "; holds = within 10 points of clean"),
        Claim("Sec. 5, Tab. 1-2", f"share of (attack, alpha in {high}) cells where EVERY single-model aggregator is "
              ">10 points below LiD-FL", "most attacks break the single-model aggregators", round(broken / cells, 3),
              holds=broken / cells > 0.5, note=note),
        Claim("Sec. 5 (sanity)", f"best robust single-model aggregator, worst attack, alpha = {low}",
              "robust aggregators work under a minority", round(robust_low, 4), holds=robust_low >= clean - 0.10,
              note=note),
    ]


@reproduction("alpha-sweep", "Accuracy vs fraction of malicious clients: LiD-FL's best listed model vs single-model aggregators")
def alpha_sweep_repro(quick: bool, out: Path) -> list[Claim]:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the batched ops are small: extra threads only add synchronisation overhead
    try:
        res = alpha_sweep(sweep_settings(quick))
    finally:
        torch.set_num_threads(threads)
    tag = "quick" if quick else "full"
    (out / f"alpha_sweep_{tag}.json").write_text(json.dumps(res, indent=1))
    plot_sweep(res, out / f"alpha_sweep_{tag}.png")
    return sweep_claims(res)


REPRODUCTIONS = [alpha_sweep_repro]
