"""Configs of the two reproductions (frozen, validated, serialisable).

The paper is theoretical and has no experiment tables; the defaults follow the research notes'
demonstration plan ("K = 3-5, r in [1e-6, 1e-1]") and the issue's reproduction list.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


def _check(cond: bool, what: str, expected: str, got: Any) -> None:
    if not cond:
        raise ValueError(f"{what}: expected {expected}, got {got!r}")


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown keys {sorted(unknown)}; expected a subset of {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True, kw_only=True)
class RegretBoundConfig(_Serialisable):
    """The ψ(r) slope experiment (paper Thm. (i)-(ii); notes (c) demonstration 1)."""

    #: K, the number of classes (notes: K = 3-5; K >= 3 is needed for Tsallis α > 2 to be non-strong)
    num_classes: int = 3
    #: s of the s-norm ‖p - q‖_s (the paper's p-norm)
    norm: float = 2.0
    #: the regret grid: num_r log-spaced levels in [r_min, r_max] (notes: r ∈ [1e-6, 1e-1])
    r_min: float = 1e-6
    r_max: float = 1e-1
    num_r: int = 11
    #: the slope is fitted on [r_min, fit_r_max] (the r -> 0 regime)
    fit_r_max: float = 1e-3
    #: losses (specs for get_loss) whose ψ is computed
    losses: tuple[str, ...] = ("log", "brier", "spherical", "tsallis-1.5", "tsallis-3", "quartic", "zero-one")
    #: (p, u) candidates of the initial search and local refinement rounds
    num_candidates: int = 4096
    refine_rounds: int = 8
    seed: int = 0

    def __post_init__(self):
        _check(isinstance(self.num_classes, int) and self.num_classes >= 2, "num_classes", "an int >= 2", self.num_classes)
        _check(self.norm >= 1, "norm", "s in [1, inf]", self.norm)
        _check(0 < self.r_min < self.r_max and math.isfinite(self.r_max), "r_min/r_max",
               "0 < r_min < r_max < inf", (self.r_min, self.r_max))
        _check(self.num_r >= 3, "num_r", ">= 3 levels", self.num_r)
        _check(self.r_min < self.fit_r_max <= self.r_max, "fit_r_max", "in (r_min, r_max]", self.fit_r_max)
        _check(len(self.losses) > 0, "losses", "at least one loss spec", self.losses)
        _check(self.num_candidates >= 64, "num_candidates", ">= 64", self.num_candidates)
        _check(self.refine_rounds >= 0, "refine_rounds", ">= 0", self.refine_rounds)


@dataclass(frozen=True, kw_only=True)
class LearningCurveConfig(_Serialisable):
    """Softmax regression on synthetic data with known p(y|x) (issue: learning-curve reproduction).

    x ~ N(0, I_d), p(y|x) = softmax(W* x + b*) with W* entries N(0, weight_scale²/d): the model is
    well-specified, so every strictly proper composite loss is Fisher-consistent and q̂ -> p.
    """

    num_classes: int = 3
    dim: int = 4
    #: training-set sizes n (the curve's x-axis)
    sample_sizes: tuple[int, ...] = (125, 500, 2000, 8000, 32000)
    #: independent draws of the training set per n
    seeds: tuple[int, ...] = (0, 1, 2)
    losses: tuple[str, ...] = ("log", "brier", "spherical", "tsallis-1.5")
    #: s of ‖q̂ - p‖_s
    norm: float = 2.0
    #: scale of the true weights (larger: more confident p(y|x), closer to the simplex boundary)
    weight_scale: float = 2.0
    #: test points where ‖q̂(x) - p(x)‖ and R(q̂(x); p(x)) are averaged
    num_test: int = 20000
    #: full-batch L-BFGS iterations
    max_iter: int = 300
    data_seed: int = 1234

    def __post_init__(self):
        _check(isinstance(self.num_classes, int) and self.num_classes >= 2, "num_classes", "an int >= 2", self.num_classes)
        _check(isinstance(self.dim, int) and self.dim >= 1, "dim", "an int >= 1", self.dim)
        _check(len(self.sample_sizes) >= 2 and all(n >= 10 for n in self.sample_sizes), "sample_sizes",
               ">= 2 sizes, each >= 10", self.sample_sizes)
        _check(len(self.seeds) >= 1, "seeds", "at least one seed", self.seeds)
        _check(len(self.losses) >= 1, "losses", "at least one loss spec", self.losses)
        _check(self.norm >= 1, "norm", "s in [1, inf]", self.norm)
        _check(self.weight_scale > 0, "weight_scale", "> 0", self.weight_scale)
        _check(self.num_test >= 100, "num_test", ">= 100", self.num_test)
        _check(self.max_iter >= 1, "max_iter", ">= 1", self.max_iter)
