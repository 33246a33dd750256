"""The synthetic experiment (Sec. 6.1, Fig. 1): six methods on the (L0, L1)-smooth quartic for L1 in {1, 10, 100, 1000}.

Each method runs on all its grid points at once (numpy arrays over the grid), so the whole experiment,
grid search included, takes seconds. The tuned methods (GD, clipped GD) report the grid point whose best
gap ``min_t f(x_t) - f*`` is smallest, as the paper selects them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from polyak_clip import functional as Fn

LR_GRID = tuple(10.0**-k for k in range(0, 9))  # {1, 1e-1, ..., 1e-8}
CLIP_GRID = (0.01, 0.1, 1.0, 5.0, 10.0, 15.0, 20.0, math.inf)
METHODS = ("gd", "clipped_gd", "polyak", "decsps", "adasps", "inexact_polyak")


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """The paper's synthetic setting (Sec. 6.1).

    Args:
        L0: (L0, L1)-smoothness constant L0 (1 in the paper).
        L1_values: the L1 values compared (Fig. 1).
        x0: the starting point (5).
        f_star: the optimal value f* (1), so that l* = 0 is inexact by sigma^2 = f* - l* = 1.
        lower_bound: l* for Inexact Polyak, DecSPS and AdaSPS (0).
        iters_tuned: iterations for GD, clipped GD and Polyak (500).
        iters_adaptive: iterations for DecSPS, AdaSPS and Inexact Polyak (10,000; also Inexact Polyak's T).
        lr_grid, clip_grid: the grids of GD and clipped GD.
        tol: the gap ``f(x) - f*`` at which a method counts as converged (for the iteration counts).
    """

    L0: float = 1.0
    L1_values: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
    x0: float = 5.0
    f_star: float = 1.0
    lower_bound: float = 0.0
    iters_tuned: int = 500
    iters_adaptive: int = 10_000
    lr_grid: tuple[float, ...] = field(default=LR_GRID)
    clip_grid: tuple[float, ...] = field(default=CLIP_GRID)
    tol: float = 1e-2

    def __post_init__(self):
        if self.L0 <= 0 or any(v <= 0 for v in self.L1_values):
            raise ValueError(f"L0 and every L1 must be > 0, got L0={self.L0}, L1_values={self.L1_values}")
        if self.iters_tuned < 1 or self.iters_adaptive < 1:
            raise ValueError(f"iteration counts must be >= 1, got {self.iters_tuned}, {self.iters_adaptive}")
        if self.lower_bound > self.f_star:
            raise ValueError(f"lower_bound ({self.lower_bound}) must not exceed f_star ({self.f_star})")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> SyntheticConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L1s = list(result["results"])
    fig, axes = plt.subplots(1, len(L1s), figsize=(4 * len(L1s), 3.2), sharey=True)
    for ax, L1 in zip(np.atleast_1d(axes), L1s):
        for method, r in result["results"][L1].items():
            ax.loglog(np.arange(1, len(r["curve"]) + 1), np.maximum(r["curve"], 1e-12), label=method)
        ax.set_title(f"L1 = {L1:g}")
        ax.set_xlabel("iteration")
    np.atleast_1d(axes)[0].set_ylabel("min f(x) - f*")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
