"""The readable reference of :mod:`polyak_clip.optim`: host floats, Python branches, one loop per parameter.

It reads like the papers (``gamma`` is a Python float from :mod:`polyak_clip.functional`) and synchronises
with the device on every step; the fast optimizers are tested against it step by step
(``tests/test_optim.py``). Same edge-case rules as the fast path: a non-finite loss or gradient, a vanishing
gradient or (Polyak family) a loss below the bound take no step; the best iterate is tracked on every step.
"""

from __future__ import annotations

import math

import torch

from polyak_clip import functional as Fn


class ReferenceOptimizer:
    """One rule of :data:`polyak_clip.optim.OPTIMIZERS`, written plainly.

    Args:
        method: a key of ``OPTIMIZERS``.
        groups: a list of ``(params, lr)`` pairs (``lr`` multiplies the step; ClippedSGD's learning rate).
        **hp: the rule's hyper-parameters, with the same names and defaults as the fast classes.
    """

    DEFAULTS = {"inexact_polyak": {"T": None, "lower_bound": 0.0, "track_best": True},
                "polyak": {"f_star": 0.0, "max_step": math.inf}, "decsps": {"lower_bound": 0.0, "c0": 1.0, "gamma_b": 10.0},
                "adasps": {"lower_bound": 0.0, "c_p": 1.0}, "dog": {"reps_rel": 1e-6}, "clipped_sgd": {"clip": math.inf}}

    def __init__(self, method: str, groups: list[tuple[list[torch.Tensor], float]], eps: float = 1e-12, **hp):
        self.method, self.groups, self.eps = method, groups, eps
        self.hp = dict(self.DEFAULTS[method], **hp)
        self.t, self.gamma, self.best_loss, self.best = 0, 0.0, math.inf, None
        self.c_prev, self.gamma_prev = self.hp.get("c0"), self.hp.get("gamma_b")  # DecSPS
        self.gap_sum, self.prev_gamma = 0.0, math.inf  # AdaSPS
        self.grad_sq_sum, self.max_dist, self.x0 = 0.0, None, None  # DoG

    def params(self) -> list[torch.Tensor]:
        return [p for ps, _ in self.groups for p in ps]

    @torch.no_grad()
    def step(self, closure) -> float:
        with torch.enable_grad():
            loss = closure()
        f = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        params = self.params()
        grad_sq = sum(float(p.grad.double().square().sum()) for p in params if p.grad is not None)
        finite = math.isfinite(f) and math.isfinite(grad_sq)
        if self.method == "dog" and self.t == 0:
            self.x0 = [p.detach().clone() for p in params]
            self.max_dist = self.hp["reps_rel"] * (1 + math.sqrt(sum(float(p.double().square().sum()) for p in params)))
        if self.method == "inexact_polyak" and self.hp["track_best"] and finite and f < self.best_loss:
            self.best_loss, self.best = f, [p.detach().clone() for p in params]
        gamma = self._gamma(f, grad_sq) if finite and grad_sq > self.eps else 0.0
        for ps, lr in self.groups:
            for p in ps:
                if p.grad is not None:
                    p.sub_(lr * gamma * p.grad)
        self.t, self.gamma = self.t + 1, gamma
        if self.method == "dog":
            dist = math.sqrt(sum(float((p - x0).double().square().sum()) for p, x0 in zip(params, self.x0)))
            self.max_dist = max(self.max_dist, dist)
        return f

    def _gamma(self, f: float, grad_sq: float) -> float:
        hp, m = self.hp, self.method
        if m == "clipped_sgd":
            return float(Fn.clipped_step(1.0, math.sqrt(grad_sq), hp["clip"], self.eps))
        if m == "dog":
            self.grad_sq_sum += grad_sq
            return float(Fn.dog_step(self.max_dist, self.grad_sq_sum, self.eps))
        bound = hp["f_star"] if m == "polyak" else hp["lower_bound"]
        gap = max(f - bound, 0.0)  # below the bound: no step
        if m == "inexact_polyak":
            return float(Fn.inexact_polyak_step(gap, 0.0, grad_sq, hp["T"], self.eps))
        if m == "polyak":
            return min(float(Fn.polyak_step(gap, 0.0, grad_sq, self.eps)), hp["max_step"])
        if m == "decsps":
            c_t = hp["c0"] * math.sqrt(self.t + 1)
            gamma = float(Fn.decsps_step(gap, 0.0, grad_sq, c_t, self.c_prev, self.gamma_prev, self.eps))
            self.c_prev, self.gamma_prev = c_t, gamma
            return gamma
        self.gap_sum += gap  # adasps
        gamma = float(Fn.adasps_step(gap, 0.0, grad_sq, self.gap_sum, self.prev_gamma, hp["c_p"], self.eps))
        self.prev_gamma = gamma
        return gamma
