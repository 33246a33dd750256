"""The synthetic experiment (Sec. 6.1, Fig. 1): six methods on the (L0, L1)-smooth quartic for L1 in {1, 10, 100, 1000}.

Each method runs on all its grid points at once (numpy arrays over the grid), so the whole experiment,
grid search included, takes seconds. The tuned methods (GD, clipped GD) report the grid point whose best
gap ``min_t f(x_t) - f*`` is smallest, as the paper selects them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from papercommon.checks import check_finite, check_int, check_positive
from papercommon.config import Config
from papercommon.figures import figure

from polyak_clip import functional as Fn

LR_GRID = tuple(10.0**-k for k in range(0, 9))  # {1, 1e-1, ..., 1e-8}
CLIP_GRID = (0.01, 0.1, 1.0, 5.0, 10.0, 15.0, 20.0, math.inf)
METHODS = ("gd", "clipped_gd", "polyak", "decsps", "adasps", "inexact_polyak")


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig(Config):
    """The paper's synthetic setting (Sec. 6.1, Fig. 1)."""

    L0: float = 1.0  # (L0, L1)-smoothness constant L0 (1 in the paper)
    L1_values: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)  # the L1 values of Fig. 1's panels
    x0: float = 5.0  # the starting point
    f_star: float = 1.0  # the optimal value f*, so that l* = 0 is inexact by sigma^2 = f* - l* = 1
    lower_bound: float = 0.0  # l* for Inexact Polyak, DecSPS and AdaSPS
    iters_tuned: int = 500  # iterations for GD, clipped GD and Polyak
    iters_adaptive: int = 10_000  # iterations for DecSPS, AdaSPS and Inexact Polyak (also IPS's T)
    lr_grid: tuple[float, ...] = field(default=LR_GRID)  # GD / clipped GD learning rates {1, ..., 1e-8}
    clip_grid: tuple[float, ...] = field(default=CLIP_GRID)  # clipped GD thresholds {0.01, ..., 20, inf}
    tol: float = 1e-2  # the gap f(x) - f* at which a method counts as converged (iteration counts)

    def validate(self) -> None:
        check_positive("L0", self.L0)
        for v in self.L1_values:
            check_positive("L1_values[i]", v)
        for name in ("x0", "f_star", "lower_bound"):
            check_finite(name, getattr(self, name))
        check_int("iters_tuned", self.iters_tuned)
        check_int("iters_adaptive", self.iters_adaptive)
        check_positive("tol", self.tol)
        if self.lower_bound > self.f_star:
            raise ValueError(f"lower_bound: expected <= f_star ({self.f_star}), got {self.lower_bound}")


def run_method(method: str, L1: float, cfg: SyntheticConfig) -> dict[str, np.ndarray]:
    """Run one method on every grid point at once.

    Returns:
        ``gaps`` ``[iters + 1, grid]`` (``f(x_t) - f*``; inf once an iterate diverges) and ``grid``, a list of
        the hyperparameters of each column.
    """
    L0, fs, lb = cfg.L0, cfg.f_star, cfg.lower_bound
    if method == "gd":
        grid = [{"lr": lr} for lr in cfg.lr_grid]
    elif method == "clipped_gd":
        grid = [{"lr": lr, "clip": c} for lr in cfg.lr_grid for c in cfg.clip_grid]
    elif method in METHODS:
        grid = [{}]
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    T = cfg.iters_tuned if method in ("gd", "clipped_gd", "polyak") else cfg.iters_adaptive
    x = np.full(len(grid), cfg.x0)
    lr = np.array([g.get("lr", 0.0) for g in grid])
    clip = np.array([g.get("clip", math.inf) for g in grid])
    gaps = np.empty((T + 1, len(grid)))
    state = {"c_prev": 1.0, "gamma_prev": 10.0, "gap_sum": 0.0, "adagamma": math.inf}
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T + 1):
            f = Fn.synthetic_f(x, L0, L1, fs)
            gaps[t] = np.where(np.isfinite(f), f - fs, np.inf)
            if t == T:
                break
            g = Fn.synthetic_grad(x, L0, L1)
            g2 = g * g
            if method in ("gd", "clipped_gd"):
                gamma = Fn.clipped_step(lr, np.abs(g), clip)
            elif method == "polyak":
                gamma = Fn.polyak_step(f, fs, g2)
            elif method == "inexact_polyak":
                gamma = Fn.inexact_polyak_step(f, lb, g2, T)
            elif method == "decsps":
                c_t = math.sqrt(t + 1)
                gamma = Fn.decsps_step(f, lb, g2, c_t, state["c_prev"], state["gamma_prev"])
                state.update(c_prev=c_t, gamma_prev=gamma)
            else:  # adasps
                state["gap_sum"] = state["gap_sum"] + (f - lb)
                gamma = Fn.adasps_step(f, lb, g2, state["gap_sum"], state["adagamma"])
                state["adagamma"] = gamma
            x = np.where(np.isfinite(x), x - gamma * g, np.nan)
    gaps = np.where(np.isnan(gaps), np.inf, gaps)
    return {"gaps": gaps, "grid": grid}


def best_of_grid(result: dict) -> tuple[np.ndarray, dict]:
    """The column whose best gap is smallest (ties: the one that gets there first); its running-min curve."""
    best_so_far = np.minimum.accumulate(result["gaps"], axis=0)
    final = best_so_far[-1]
    reach = np.argmax(best_so_far <= final.min() * (1 + 1e-9), axis=0).astype(float)
    reach[final > final.min() * (1 + 1e-9)] = np.inf
    j = int(np.lexsort((reach, final))[0])
    return best_so_far[:, j], result["grid"][j]


def iterations_to(curve: np.ndarray, tol: float) -> float:
    """First iteration with gap <= tol (inf if never)."""
    hit = np.nonzero(curve <= tol)[0]
    return float(hit[0]) if len(hit) else math.inf


def run_synthetic(cfg: SyntheticConfig | None = None) -> dict:
    """The whole experiment: for every L1 and method, the best-so-far gap curve, the selected hyperparameters,
    the final gap and the iterations needed to reach ``cfg.tol``."""
    cfg = cfg or SyntheticConfig()
    out: dict = {"config": cfg.to_dict(), "results": {}}
    for L1 in cfg.L1_values:
        per = {}
        for method in METHODS:
            curve, hp = best_of_grid(run_method(method, L1, cfg))
            per[method] = {"curve": curve, "hyperparameters": hp, "final_gap": float(curve[-1]),
                           "iterations_to_tol": iterations_to(curve, cfg.tol)}
        out["results"][L1] = per
    return out


def plot_synthetic(result: dict, path) -> None:
    """Fig. 1: ``min_s f(x_s) - f*`` against iterations, one panel per L1."""
    L1s = list(result["results"])
    with figure(path, ncols=len(L1s), figsize=(4 * len(L1s), 3.2), sharey=True) as axes:
        for ax, L1 in zip(np.atleast_1d(axes), L1s):
            for method, r in result["results"][L1].items():
                ax.loglog(np.arange(1, len(r["curve"]) + 1), np.maximum(r["curve"], 1e-12), label=method)
            ax.set_title(f"L1 = {L1:g}")
            ax.set_xlabel("iteration")
        np.atleast_1d(axes)[0].set_ylabel("min f(x) - f*")
