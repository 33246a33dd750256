"""Inexact Polyak stepsize and its rivals as ``torch.optim.Optimizer`` s.

All of them take one global step ``x <- x - gamma_t g_t`` with ``g_t`` the gradient of *every* parameter
group and a scalar ``gamma_t`` from :mod:`polyak_clip.functional`. The hot path is two multi-tensor
kernels (``_foreach_norm`` for ``||g||``, ``_foreach_add_`` for the update), never a per-parameter loop.

Every ``step`` needs a closure that re-evaluates the loss (and calls ``backward``), as for L-BFGS:

    >>> opt = InexactPolyak(model.parameters(), T=1000)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = loss_fn(model(x), y)
    ...     loss.backward()
    ...     return loss
    >>> for _ in range(1000):
    ...     opt.step(closure)
    >>> opt.restore_best()   # the best iterate seen (Algorithm 1 returns it)

Behaviour on edge cases (all optimizers): a non-finite loss or gradient raises ``FloatingPointError``
before any parameter changes; a vanishing gradient (``||g||^2 <= eps``) takes no step; for the Polyak
family a loss below the lower bound warns and takes no step (its step would point uphill).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable

import torch

from polyak_clip import functional as Fn

Closure = Callable[[], torch.Tensor | float]


class _GlobalStepOptimizer(torch.optim.Optimizer):
    """Base class: evaluate the closure, compute ``||g||`` over all groups, take ``x -= gamma * g``.

    Subclasses implement :meth:`_gamma` from the loss and ``||g||^2``. Scalars shared by all groups live in
    ``self.state["global"]``, which ``state_dict`` / ``load_state_dict`` carry like any other state.
    """

    def __init__(self, params: Iterable, defaults: dict, eps: float = 1e-12):
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        super().__init__(params, dict(defaults, eps=eps))
        self.state["global"] = {"step": 0, "gamma": 0.0, "loss": math.nan, "grad_norm": math.nan}

    @property
    def eps(self) -> float:
        return self.param_groups[0]["eps"]

    def _params_and_grads(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            raise RuntimeError("no parameter has a gradient: the closure must call loss.backward()")
        return params, [p.grad for p in params]

    def _gamma(self, loss: float, grad_sq: float, params: list[torch.Tensor]) -> float:
        raise NotImplementedError  # each subclass is one stepsize rule

    def _after_step(self, params: list[torch.Tensor]) -> None:
        """Hook for rules that track the iterates (DoG)."""

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        """One step; returns the loss at the point *before* the step."""
        if closure is None:
            raise ValueError(f"{type(self).__name__} needs the loss at every step: call step(closure) with a "
                             "closure that zeroes the gradients, computes the loss, calls backward and returns it")
        with torch.enable_grad():
            loss = closure()
        f = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(f):
            raise FloatingPointError(f"the closure returned a non-finite loss ({f}); no step was taken")
        params, grads = self._params_and_grads()
        grad_sq = float(torch.stack(torch._foreach_norm(grads)).square().sum())
        if not math.isfinite(grad_sq):
            raise FloatingPointError(f"the gradient norm is not finite (||g||^2 = {grad_sq}); no step was taken")
        g = self.state["global"]
        gamma = 0.0 if grad_sq <= self.eps else float(self._gamma(f, grad_sq, params))
        if gamma:
            torch._foreach_add_(params, grads, alpha=-gamma)
        g.update(step=g["step"] + 1, gamma=gamma, loss=f, grad_norm=math.sqrt(grad_sq))
        self._after_step(params)
        return loss if isinstance(loss, torch.Tensor) else torch.tensor(f)

    @property
    def last_step_size(self) -> float:
        """``gamma`` of the last step."""
        return self.state["global"]["gamma"]


class _PolyakFamily(_GlobalStepOptimizer):
    """Rules built on ``f - l*``: a loss below the lower bound warns and takes no step."""

    def _gap(self, loss: float, bound: float) -> float:
        gap = loss - bound
        if gap < 0:
            warnings.warn(f"{type(self).__name__}: loss {loss:.6g} is below the lower bound {bound:.6g}; "
                          "the bound is wrong (lower it); no step was taken", RuntimeWarning, stacklevel=4)
            return 0.0
        return gap


class InexactPolyak(_PolyakFamily):
    """Inexact Polyak stepsize (Takezawa et al., NeurIPS 2024, Algorithm 1).

    ``x_{t+1} = x_t - (f(x_t) - l*) / (sqrt(T) ||grad f(x_t)||^2) grad f(x_t)``, returning the best iterate.
    Needs neither f* nor a learning rate nor a clipping threshold; the rate is asymptotically independent of
    L1 under (L0, L1)-smoothness (Theorem 5).

    Args:
        params: parameters or parameter groups (the gradient norm is taken over all of them).
        T: the planned number of iterations (the step divides by sqrt(T)); must be >= 1. Running longer is
            allowed, but the guarantee is for T steps.
        lower_bound: l*, a lower bound of the loss (0 for non-negative losses).
        track_best: keep a copy of the parameters with the lowest loss seen (Algorithm 1's output);
            :meth:`restore_best` loads it. The paper turns it off for the neural networks.
        eps: ``||g||^2`` at or below ``eps`` counts as a vanishing gradient: no step.

    Paper: Takezawa, Bao, Sato, Niwa, Yamada. Polyak Meets Parameter-free Clipped Gradient Descent. NeurIPS 2024.
    """

    def __init__(self, params: Iterable, T: int, lower_bound: float = 0.0, track_best: bool = True,
                 eps: float = 1e-12):
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T (the number of iterations) must be an integer >= 1, got {T!r}")
        if not math.isfinite(lower_bound):
            raise ValueError(f"lower_bound must be finite, got {lower_bound}")
        super().__init__(params, {"T": T, "lower_bound": lower_bound, "track_best": track_best}, eps)
        self.state["global"]["best_loss"] = math.inf

    def _gamma(self, loss, grad_sq, params):
        group = self.param_groups[0]
        if group["track_best"] and loss < self.state["global"]["best_loss"]:
            self.state["global"]["best_loss"] = loss
            everything = [p for g in self.param_groups for p in g["params"]]
            best = [self.state[p].setdefault("best", torch.empty_like(p)) for p in everything]
            torch._foreach_copy_(best, everything)
        gap = self._gap(loss, group["lower_bound"])
        return Fn.inexact_polyak_step(gap, 0.0, grad_sq, group["T"], self.eps)

    @property
    def best_loss(self) -> float:
        """The lowest loss seen (at the point where it was evaluated)."""
        return self.state["global"]["best_loss"]

    @torch.no_grad()
    def restore_best(self) -> float:
        """Load the best iterate seen into the parameters; returns its loss."""
        if not self.param_groups[0]["track_best"]:
            raise RuntimeError("restore_best needs track_best=True")
        if not math.isfinite(self.best_loss):
            raise RuntimeError("no step has been taken yet: there is no best iterate")
        everything = [p for g in self.param_groups for p in g["params"] if "best" in self.state[p]]
        torch._foreach_copy_(everything, [self.state[p]["best"] for p in everything])
        return self.best_loss


class Polyak(_PolyakFamily):
    """Polyak stepsize with the optimal value known: ``gamma = (f - f*) / ||g||^2`` (Polyak, 1987).

    Args:
        f_star: the optimal value f* (0 for interpolating networks, as the paper sets it).
        max_step: optional cap on gamma (SPS_max of Loizou et al., 2021); ``inf`` is the paper's Polyak.
    """

    def __init__(self, params: Iterable, f_star: float = 0.0, max_step: float = math.inf, eps: float = 1e-12):
        if max_step <= 0:
            raise ValueError(f"max_step must be > 0, got {max_step}")
        super().__init__(params, {"f_star": f_star, "max_step": max_step}, eps)

    def _gamma(self, loss, grad_sq, params):
        group = self.param_groups[0]
        return min(Fn.polyak_step(self._gap(loss, group["f_star"]), 0.0, grad_sq, self.eps), group["max_step"])


class DecSPS(_PolyakFamily):
    """Decreasing SPS (Orvieto, Lacoste-Julien, Loizou; NeurIPS 2022, the rule named DecSPS; arXiv 2205.04583).

    ``gamma_t = (1/c_t) min{(f - l*) / ||g||^2, c_{t-1} gamma_{t-1}}`` with ``c_t = c_0 sqrt(t + 1)``,
    ``c_{-1} = c_0`` and ``gamma_{-1} = gamma_b``.

    Args:
        lower_bound: l*.
        c0: the scale of ``c_t`` (the paper's c_0, 1 by default).
        gamma_b: the initial stepsize bound gamma_b.
    """

    def __init__(self, params: Iterable, lower_bound: float = 0.0, c0: float = 1.0, gamma_b: float = 10.0,
                 eps: float = 1e-12):
        if c0 <= 0 or gamma_b <= 0:
            raise ValueError(f"c0 and gamma_b must be > 0, got c0={c0}, gamma_b={gamma_b}")
        super().__init__(params, {"lower_bound": lower_bound, "c0": c0, "gamma_b": gamma_b}, eps)
        self.state["global"]["prev"] = None

    def _gamma(self, loss, grad_sq, params):
        group, g = self.param_groups[0], self.state["global"]
        c_prev, gamma_prev = g["prev"] or (group["c0"], group["gamma_b"])
        c_t = group["c0"] * math.sqrt(g["step"] + 1)
        gamma = float(Fn.decsps_step(self._gap(loss, group["lower_bound"]), 0.0, grad_sq, c_t, c_prev, gamma_prev,
                                     self.eps))
        g["prev"] = (c_t, gamma)
        return gamma


class AdaSPS(_PolyakFamily):
    """AdaSPS (Jiang & Stich, NeurIPS 2023, the rule labelled (AdaSPS); arXiv 2308.06058).

    ``gamma_t = min{(f_t - l*) / (c_p ||g_t||^2 sqrt(sum_{s<=t} (f_s - l*))), gamma_{t-1}}``, ``gamma_{-1} = inf``.

    Args:
        lower_bound: l*.
        c_p: the scaling constant (1 by default; the paper's theory takes c_p >= 1/2 for convex losses).
    """

    def __init__(self, params: Iterable, lower_bound: float = 0.0, c_p: float = 1.0, eps: float = 1e-12):
        if c_p <= 0:
            raise ValueError(f"c_p must be > 0, got {c_p}")
        super().__init__(params, {"lower_bound": lower_bound, "c_p": c_p}, eps)
        self.state["global"].update(gap_sum=0.0, prev_gamma=math.inf)

    def _gamma(self, loss, grad_sq, params):
        group, g = self.param_groups[0], self.state["global"]
        gap = self._gap(loss, group["lower_bound"])
        g["gap_sum"] += gap
        gamma = float(Fn.adasps_step(gap, 0.0, grad_sq, g["gap_sum"], g["prev_gamma"], group["c_p"], self.eps))
        g["prev_gamma"] = gamma
        return gamma


class DoG(_GlobalStepOptimizer):
    """Distance over Gradients (Ivgi, Hinder, Carmon; ICML 2023, the "(DoG)" rule; arXiv 2302.12022), global
    (not the layer-wise L-DoG) version, without the iterate averaging the DoG authors recommend (as in the paper).

    ``gamma_t = max_{i<=t} ||x_i - x_0|| / sqrt(sum_{i<=t} ||g_i||^2)``, the distance floored at
    ``r_eps = reps_rel (1 + ||x_0||)``.

    Args:
        reps_rel: the relative initial movement (1e-6 in the paper).
    """

    def __init__(self, params: Iterable, reps_rel: float = 1e-6, eps: float = 1e-12):
        if reps_rel <= 0:
            raise ValueError(f"reps_rel must be > 0, got {reps_rel}")
        super().__init__(params, {"reps_rel": reps_rel}, eps)
        self.state["global"].update(grad_sq_sum=0.0, max_dist=None)

    def _gamma(self, loss, grad_sq, params):
        g = self.state["global"]
        everything = [p for grp in self.param_groups for p in grp["params"]]
        if g["max_dist"] is None:  # first step: remember x_0 and r_eps
            for p in everything:
                self.state[p]["x0"] = p.detach().clone()
            x0_norm = float(torch.stack(torch._foreach_norm(everything)).square().sum().sqrt())
            g["max_dist"] = self.param_groups[0]["reps_rel"] * (1 + x0_norm)
        g["grad_sq_sum"] += grad_sq
        return float(Fn.dog_step(g["max_dist"], g["grad_sq_sum"], self.eps))

    def _after_step(self, params):
        g = self.state["global"]
        if g["max_dist"] is None:
            return
        everything = [p for grp in self.param_groups for p in grp["params"]]
        diff = torch._foreach_sub(everything, [self.state[p]["x0"] for p in everything])
        dist = float(torch.stack(torch._foreach_norm(diff)).square().sum().sqrt())
        g["max_dist"] = max(g["max_dist"], dist)


class ClippedSGD(_GlobalStepOptimizer):
    """(Clipped) gradient descent: ``gamma = lr min(1, clip / ||g||)`` with the global gradient norm
    (``clip=inf``: plain SGD), the grid-tuned baseline of the paper.

    Args:
        lr: the learning rate.
        clip: the clipping threshold c (``math.inf`` for none).
    """

    def __init__(self, params: Iterable, lr: float, clip: float = math.inf, eps: float = 1e-12):
        if lr <= 0 or clip <= 0:
            raise ValueError(f"lr and clip must be > 0, got lr={lr}, clip={clip}")
        super().__init__(params, {"lr": lr, "clip": clip}, eps)

    def _gamma(self, loss, grad_sq, params):
        group = self.param_groups[0]
        return float(Fn.clipped_step(group["lr"], math.sqrt(grad_sq), group["clip"], self.eps))


OPTIMIZERS = {"inexact_polyak": InexactPolyak, "polyak": Polyak, "decsps": DecSPS, "adasps": AdaSPS, "dog": DoG,
              "clipped_sgd": ClippedSGD}
