"""Configurations for V:N:M sparsity (masks, model conversion) and the three-staged LoRA.

Paper: "Beyond 2:4: exploring V:N:M sparsity for efficient Transformer inference on GPUs"
(arXiv 2410.16135). Section numbers refer to that paper.
"""

from __future__ import annotations

from dataclasses import dataclass

from papercommon.checks import check_choice, check_int, check_positive, check_range
from papercommon.config import Config

SCORES = ("magnitude", "ria")


@dataclass(frozen=True, kw_only=True)
class VNMConfig(Config):
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

    v: int = 64  # rows per block (Sec. 2); 64 in Tables 1-4
    n: int = 2  # kept per row among the 4 columns: 2:4 on sparse tensor cores (Sec. 2)
    m: int = 5  # columns per block; density 2/m (Tables 1-3 use 5 and 8)
    score: str = "magnitude"  # "magnitude" for ViTs (Sec. 3.2), "ria" for LLMs (Sec. 3.3)
    ria_alpha: float = 0.5  # RIA's activation exponent a (Zhang et al. ICLR'24 default)
    exact: bool = False  # exact C(m,4) search instead of the column-norm heuristic (Sec. 2)
    pad: bool = False  # pad shapes v/m do not divide (padding is never kept)

    def validate(self) -> None:
        check_int("v", self.v, min_value=1)
        if self.n != 2:
            raise ValueError(f"n: expected 2 (V:N:M sparse tensor cores run 2:4 inside the 4 kept columns), "
                             f"got {self.n!r}")
        check_int("m", self.m, min_value=4)
        check_choice("score", self.score, SCORES)
        check_positive("ria_alpha", self.ria_alpha, allow_zero=True)

    @property
    def density(self) -> float:
        """Fraction of weights kept: n/m."""
        return self.n / self.m

    @property
    def name(self) -> str:
        return f"{self.v}:{self.n}:{self.m}"



@dataclass(frozen=True, kw_only=True)
class ThreeStageLoRAConfig(Config):
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

    total_steps: int = 1000  # optimiser steps over all three stages
    dense_frac: float = 0.05  # stage 1 share (stages 1 + 2 <= 10%, Sec. 3.3)
    dynamic_frac: float = 0.05  # stage 2 share
    mask_interval: int = 10  # steps between re-maskings in stage 2
    lam: float = 2e-4  # Eq. 3 regulariser weight (not stated in the paper; SR-STE's 2e-4)
    rank: int = 16  # LoRA rank
    alpha: float = 32.0  # LoRA alpha (scale alpha / rank)
    lr: float = 2e-4  # AdamW learning rate of the LoRA factors
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def validate(self) -> None:
        check_int("total_steps", self.total_steps)
        check_range("dense_frac", self.dense_frac, 0, 1)
        check_range("dynamic_frac", self.dynamic_frac, 0, 1)
        check_range("dense_frac + dynamic_frac", self.dense_frac + self.dynamic_frac, 0, 1)
        check_int("mask_interval", self.mask_interval)
        check_positive("lam", self.lam, allow_zero=True)
        check_int("rank", self.rank)
        check_positive("alpha", self.alpha)
        check_positive("lr", self.lr)
        if not self.target_modules or not all(isinstance(t, str) for t in self.target_modules):
            raise ValueError(f"target_modules: expected a non-empty tuple of module names, got {self.target_modules!r}")

    @property
    def stage_steps(self) -> tuple[int, int, int]:
        """Steps in stages 1, 2 and 3."""
        s1 = round(self.total_steps * self.dense_frac)
        s2 = round(self.total_steps * self.dynamic_frac)
        return s1, s2, self.total_steps - s1 - s2
