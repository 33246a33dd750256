"""Pure step-size formulas and the paper's synthetic (L0, L1)-smooth function.

Each stepsize rule returns the scalar step ``gamma`` of the update ``x <- x - gamma * g``; the optimizers in
:mod:`polyak_clip.optim` and the vectorised synthetic experiment both call these, so the formulas live in
one place. Inputs may be Python floats, numpy arrays or torch tensors (elementwise).
"""

from __future__ import annotations

import math

import numpy as np


def polyak_step(f, f_star, grad_sq, eps: float = 1e-12):
    """Polyak (1987): ``(f - f*) / ||g||^2``."""
    return (f - f_star) / np.maximum(grad_sq, eps)


def inexact_polyak_step(f, lower_bound, grad_sq, T: int, eps: float = 1e-12):
    """Inexact Polyak stepsize, Algorithm 1: ``(f - l*) / (sqrt(T) ||g||^2)``."""
    return polyak_step(f, lower_bound, grad_sq, eps) / math.sqrt(T)


def decsps_step(f, lower_bound, grad_sq, c_t, c_prev, gamma_prev, eps: float = 1e-12):
    """DecSPS (Orvieto, Lacoste-Julien, Loizou; NeurIPS 2022, the rule named DecSPS, arXiv 2205.04583):
    ``(1/c_t) min{(f - l*)/||g||^2, c_{t-1} gamma_{t-1}}`` with ``c_t = c_0 sqrt(t + 1)`` (the schedule of
    their convergence theorems), ``c_{-1} = c_0`` and ``gamma_{-1} = gamma_b``. The rule makes
    ``c_t gamma_t`` non-increasing, so ``gamma_t <= c_0 gamma_b / c_t``."""
    return np.minimum(polyak_step(f, lower_bound, grad_sq, eps), c_prev * gamma_prev) / c_t


def adasps_step(f, lower_bound, grad_sq, loss_gap_sum, gamma_prev, c_p: float = 1.0, eps: float = 1e-12):
    """AdaSPS (Jiang & Stich, NeurIPS 2023, the rule labelled (AdaSPS), arXiv 2308.06058):
    ``min{(f_t - l*) / (c_p ||g_t||^2 sqrt(sum_{s=0}^t (f_s - l*))), gamma_{t-1}}`` where the sum runs over
    all iterations so far, the current one included, and ``gamma_{-1} = +inf`` (so the step never grows)."""
    return np.minimum(polyak_step(f, lower_bound, grad_sq, eps) / (c_p * np.sqrt(np.maximum(loss_gap_sum, eps))),
                      gamma_prev)


def dog_step(max_dist, grad_sq_sum, eps: float = 1e-12):
    """DoG (Ivgi, Hinder, Carmon; ICML 2023, the rule labelled (DoG), arXiv 2302.12022):
    ``rbar_t / sqrt(sum_{i<=t} ||g_i||^2)`` with ``rbar_0 = r_eps = 1e-6 (1 + ||x_0||)`` and
    ``rbar_t = max(rbar_{t-1}, ||x_t - x_0||)`` (the max over all iterates, floored at ``r_eps`` as the
    official ``dog-optimizer`` does)."""
    return max_dist / np.sqrt(np.maximum(grad_sq_sum, eps))


def clipped_step(lr, grad_norm, clip, eps: float = 1e-12):
    """Clipped GD: ``lr * min(1, c / ||g||)`` (``clip = inf`` is plain GD)."""
    return lr * np.minimum(1.0, clip / np.maximum(grad_norm, eps))


# ----------------------------------------------------------------------------- synthetic function
def synthetic_f(x, L0: float, L1: float, f_star: float = 1.0):
    """The paper's (L0, L1)-smooth test function (Proposition 3): ``L0 L1^2 / 72 x^4 + L0 / 4 x^2 + f*``."""
    return L0 * L1**2 / 72 * x**4 + L0 / 4 * x**2 + f_star


def synthetic_grad(x, L0: float, L1: float):
    """Derivative of :func:`synthetic_f`: ``L0 L1^2 / 18 x^3 + L0 / 2 x``."""
    return L0 * L1**2 / 18 * x**3 + L0 / 2 * x
