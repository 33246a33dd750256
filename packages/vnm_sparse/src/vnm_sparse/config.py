"""Configurations for V:N:M sparsity (masks, model conversion) and the three-staged LoRA.

Paper: "Beyond 2:4: exploring V:N:M sparsity for efficient Transformer inference on GPUs"
(arXiv 2410.16135). Section numbers refer to that paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

SCORES = ("magnitude", "ria")


def _check(cond: bool, what: str, expected: str, given: Any) -> None:
    if not cond:
        raise ValueError(f"{what}: expected {expected}, given {given!r}")


@dataclass(frozen=True, kw_only=True)
class VNMConfig:
    """A V:N:M sparsity pattern and how to choose its mask.

    Args:
        v: rows per block; the same 4 columns are kept for all ``v`` rows of a block (Sec. 2, Fig. 1).
            The paper uses 64 for DeiT and Llama2 (Tables 1-4) and 16..128 in the V/M search (Sec. 3.1).
        n: kept entries per row among the 4 selected columns. V:N:M sparse tensor cores execute 2:4,
            so N is fixed to 2 (Sec. 2); any other value is rejected.
        m: columns per block; 4 of them are kept, then 2:4 inside, so the density is 2/m. The paper
            uses 5 (60% sparse) and 8 (75%) (Tables 1-3); m=4 is plain 2:4.
        score: importance used to pick the mask: "magnitude" (|W|, the paper's choice for ViTs,
            Sec. 3.2) or "ria" (relative importance and activations, Zhang et al. ICLR'24, the paper's
            choice for LLMs, Sec. 3.3).
        ria_alpha: exponent a of the activation norm in RIA, ||X_j||^a (RIA default 0.5).
        exact: search all C(m, 4) column subsets per block (exact) instead of the column-norm
            heuristic (Sec. 2: "the 4 columns with the largest L1 norm").
        pad: pad rows/columns that ``v``/``m`` do not divide (padded entries are never kept) instead of
            raising. Needed for e.g. 576 input features at m=5.
    """

    v: int = 64
    n: int = 2
    m: int = 5
    score: str = "magnitude"
    ria_alpha: float = 0.5
    exact: bool = False
    pad: bool = False

    def __post_init__(self) -> None:
        _check(isinstance(self.v, int) and self.v >= 1, "v", "an integer >= 1", self.v)
        _check(self.n == 2, "n", "2 (V:N:M sparse tensor cores run 2:4 inside the 4 kept columns)", self.n)
        _check(isinstance(self.m, int) and self.m >= 4, "m", "an integer >= 4", self.m)
        _check(self.score in SCORES, "score", f"one of {SCORES}", self.score)
        _check(self.ria_alpha >= 0, "ria_alpha", ">= 0", self.ria_alpha)

    @property
    def density(self) -> float:
        """Fraction of weights kept: n/m."""
        return self.n / self.m

    @property
    def name(self) -> str:
        return f"{self.v}:{self.n}:{self.m}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VNMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        _check(not unknown, "VNMConfig.from_dict keys", f"a subset of {sorted(known)}", sorted(unknown))
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class ThreeStageLoRAConfig:
    """The three-staged LoRA schedule for V:N:M-sparse LLMs (Sec. 3.3, Eq. 3).

    Stage 1 trains a dense LoRA; stage 2 trains a sparse LoRA whose mask is recomputed from W + BA
    every ``mask_interval`` steps (BA merged into W at each re-masking) with the regulariser
    ``lam * ||(W + BA) * (1 - mask_{t-1})||^2`` on pruned weights; stage 3 keeps the mask fixed.
    The paper gives stages 1 and 2 at most 10% of the iterations.

    Args:
        total_steps: optimiser steps over all three stages.
        dense_frac: fraction of steps in stage 1 (dense LoRA).
        dynamic_frac: fraction of steps in stage 2 (sparse LoRA, dynamic mask).
        mask_interval: steps between mask recomputations in stage 2.
        lam: weight of the pruned-weight regulariser in stage 2 (Eq. 3).
        rank: LoRA rank r.
        alpha: LoRA alpha (scaling alpha / r).
        lr: AdamW learning rate for the LoRA factors.
        target_modules: names of linear layers that receive LoRA (and are sparsified).
    """

    total_steps: int = 1000
    dense_frac: float = 0.05
    dynamic_frac: float = 0.05
    mask_interval: int = 10
    lam: float = 2e-4
    rank: int = 16
    alpha: float = 32.0
    lr: float = 2e-4
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self) -> None:
        _check(self.total_steps >= 1, "total_steps", ">= 1", self.total_steps)
        _check(0 <= self.dense_frac <= 1, "dense_frac", "in [0, 1]", self.dense_frac)
        _check(0 <= self.dynamic_frac <= 1, "dynamic_frac", "in [0, 1]", self.dynamic_frac)
        _check(self.dense_frac + self.dynamic_frac <= 1, "dense_frac + dynamic_frac", "<= 1",
               self.dense_frac + self.dynamic_frac)
        _check(self.mask_interval >= 1, "mask_interval", ">= 1", self.mask_interval)
        _check(self.lam >= 0, "lam", ">= 0", self.lam)
        _check(self.rank >= 1, "rank", ">= 1", self.rank)
        _check(self.lr > 0, "lr", "> 0", self.lr)

    @property
    def stage_steps(self) -> tuple[int, int, int]:
        """Steps in stages 1, 2 and 3."""
        s1 = round(self.total_steps * self.dense_frac)
        s2 = round(self.total_steps * self.dynamic_frac)
        return s1, s2, self.total_steps - s1 - s2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThreeStageLoRAConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        _check(not unknown, "ThreeStageLoRAConfig.from_dict keys", f"a subset of {sorted(known)}", sorted(unknown))
        d = dict(d)
        if "target_modules" in d:
            d["target_modules"] = tuple(d["target_modules"])
        return cls(**d)
