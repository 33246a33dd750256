"""Inexact Polyak stepsize and its rivals as ``torch.optim.Optimizer`` s, with no host sync in ``step``.

All of them take one global step ``x <- x - lr * gamma_t * g_t`` with ``g_t`` the gradient of *every*
parameter group and ``gamma_t`` one scalar from the rule (:mod:`polyak_clip.functional` has the formulas;
:mod:`polyak_clip.reference` the plain host-float implementation the fast path is tested against).
``gamma_t`` is a 0-d tensor computed on the parameters' device: ``||g||`` via ``torch._foreach_norm``,
branches via ``torch.where``, the best-iterate copy via ``torch._foreach_lerp_`` with a 0/1 weight, the
update via ``torch._foreach_addcmul_``. Nothing in ``step`` calls ``.item()``, so a GPU never waits for
the host.

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

Edge cases (all optimizers), decided on the device:

* a non-finite loss or gradient: counted in ``diagnostics()["nonfinite_steps"]`` (raising would need a
  host sync every step); the rule's state is unchanged and no parameter moves. On the CPU the step reads
  the finiteness flag (a host tensor: no device to wait for) and skips the update. On an accelerator
  nothing is read: the step size is masked to 0, so a non-finite *loss* moves nothing, but a non-finite
  *gradient* entry still poisons its parameter (0 * inf = NaN) -- check ``nonfinite_steps`` there;
* ``||g||^2 <= eps`` (a vanishing gradient): no step;
* Polyak family: a loss below the lower bound (the bound is wrong) takes no step; counted in
  ``diagnostics()["below_bound_steps"]``.

``lr`` (default 1) multiplies the step of every rule but ``ClippedSGD`` (where it *is* the learning rate):
it is what ``torch.optim.lr_scheduler`` schedules change, and it may differ between parameter groups.
Every other hyper-parameter is global (the step is one scalar from the global loss and gradient norm):
groups that set a different value are rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from papercommon.checks import check_finite, check_int, check_positive

Closure = Callable[[], torch.Tensor | float]


def _positive_or_inf(name: str, x: Any) -> float:
    if isinstance(x, int | float) and not isinstance(x, bool) and x == math.inf:
        return x
    return check_positive(name, x)


class _GlobalStepOptimizer(torch.optim.Optimizer):
    """Base class: evaluate the closure, compute ``||g||`` over all groups, take ``x -= lr * gamma * g``.

    Subclasses implement :meth:`_gamma` (a 0-d tensor from the loss and ``||g||^2``). Scalars shared by
    all groups live in ``self.state["global"]`` (0-d tensors on the parameters' device, plus the host step
    count), which ``state_dict`` / ``load_state_dict`` carry like any other state.
    """

    def __init__(self, params: Iterable, defaults: dict, eps: float = 1e-12, lr: float = 1.0):
        check_positive("eps", eps)
        check_positive("lr", lr)
        super().__init__(params, dict(defaults, lr=lr, eps=eps))
        first = self.param_groups[0]["params"][0]
        self._device = first.device
        self._dtype = torch.promote_types(first.dtype, torch.float32) if first.is_floating_point() else torch.float32
        # CPU tensors live on the host: reading a flag there waits for no device, so the CPU path skips
        # work by branching; elsewhere every decision stays on the device (torch.where / lerp weights)
        self._host_flags = self._device.type == "cpu"
        for i, group in enumerate(self.param_groups):
            for key in self.defaults:
                self._check_representable(key if i == 0 else f"param_groups[{i}][{key!r}]", group[key])
        self.state["global"] = {"optimizer": type(self).__name__, "step": 0, **self._init_global()}

    def _check_representable(self, name: str, value: Any) -> None:
        """A finite hyper-parameter the working dtype cannot hold would over- or underflow inside the step."""
        info = torch.finfo(self._dtype)
        if isinstance(value, float) and math.isfinite(value) and value and not info.tiny <= abs(value) <= info.max:
            raise ValueError(f"{name}: expected 0 or a value a {self._dtype} can hold ({info.tiny:.6g} <= |x| <= "
                             f"{info.max:.6g}), got {value!r}")

    # ----------------------------------------------------------------------------- state
    def _scalar(self, value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=self._dtype, device=self._device)

    def _init_global(self) -> dict[str, Any]:
        """The rule's global state (override and extend)."""
        zero = torch.zeros((), dtype=torch.int64, device=self._device)
        return {"gamma": self._scalar(0.0), "loss": self._scalar(math.nan), "grad_sq": self._scalar(math.nan),
                "nonfinite_steps": zero.clone(), "below_bound_steps": zero.clone()}

    def add_param_group(self, param_group: dict) -> None:
        """As ``torch.optim.Optimizer``'s, but every hyper-parameter except ``lr`` must match the first group."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        name = f"param_groups[{len(self.param_groups) - 1}]['lr']"
        try:
            check_positive(name, group["lr"])
            if hasattr(self, "_dtype"):  # groups given to the constructor are checked there, once it is known
                self._check_representable(name, group["lr"])
        except ValueError:
            self.param_groups.pop()
            raise
        first = self.param_groups[0]
        for key in self.defaults:
            if key != "lr" and group[key] != first[key]:
                self.param_groups.pop()
                raise ValueError(f"{type(self).__name__}: {key} must be the same in every parameter group (the step "
                                 f"is one global scalar; only lr may differ), got {first[key]!r} in group 0 and "
                                 f"{group[key]!r} in group {len(self.param_groups)}")

    def load_state_dict(self, state_dict: dict) -> None:
        """As ``torch.optim.Optimizer``'s, after checking that ``state_dict`` was saved by this optimizer class."""
        name = type(self).__name__
        saved = state_dict.get("state", {}).get("global", {}) if isinstance(state_dict, dict) else {}
        saved_name = saved.get("optimizer") if isinstance(saved, dict) else None
        if saved_name != name:
            raise ValueError(f"{name}.load_state_dict: expected a state_dict saved by {name}, got one saved by "
                             f"{saved_name or 'another optimizer (no polyak_clip global state)'}")
        missing = sorted({k for g in state_dict["param_groups"] for k in self.defaults if k not in g})
        if missing:
            raise ValueError(f"{name}.load_state_dict: the saved parameter groups lack {missing}")
        super().load_state_dict(state_dict)
        g = self.state["global"]
        self.state["global"] = {k: v.to(self._device).clone() if isinstance(v, torch.Tensor) else v
                                for k, v in g.items()}  # never share tensors with the saved dict

    # ----------------------------------------------------------------------------- the step
    def _gamma(self, loss: torch.Tensor, grad_sq: torch.Tensor, move: torch.Tensor) -> torch.Tensor:
        """The step size as a 0-d tensor; update the rule's state only where ``move`` (a 0-d bool) is true."""
        raise NotImplementedError  # each subclass is one stepsize rule

    def _gap(self, loss: torch.Tensor, bound: float) -> torch.Tensor:
        """``max(f - bound, 0)``; a loss below the bound is counted (the bound is wrong) and gives no step."""
        gap = loss - bound
        g = self.state["global"]
        g["below_bound_steps"] = g["below_bound_steps"] + (gap < 0)
        return gap.clamp(min=0)

    def _before_update(self, loss: torch.Tensor, finite: torch.Tensor) -> None:
        """Hook run at the point where the loss was evaluated (best-iterate tracking)."""

    def _after_step(self) -> None:
        """Hook for rules that track the iterates (DoG)."""

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        """One step; returns the loss at the point *before* the step. Never synchronises with the host."""
        if closure is None:
            raise ValueError(f"{type(self).__name__} needs the loss at every step: call step(closure) with a "
                             "closure that zeroes the gradients, computes the loss, calls backward and returns it")
        with torch.enable_grad():
            loss = closure()
        per_group = [[p for p in group["params"] if p.grad is not None] for group in self.param_groups]
        if not any(per_group):
            raise RuntimeError("no parameter has a gradient: the closure must call loss.backward()")
        f = torch.as_tensor(loss).detach().to(self._device, self._dtype).reshape(())
        grads = [[p.grad for p in ps] for ps in per_group]
        norms = torch._foreach_norm([g for gs in grads for g in gs])
        grad_sq = torch.stack(norms).to(self._dtype).square().sum()
        finite = torch.isfinite(f) & torch.isfinite(grad_sq)
        g = self.state["global"]
        g["nonfinite_steps"] = g["nonfinite_steps"] + ~finite
        if self._host_flags and not finite:  # a host tensor: reading it waits for no device
            g.update(step=g["step"] + 1, gamma=torch.zeros_like(g["gamma"]), loss=f, grad_sq=grad_sq)
            return loss if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        self._before_update(f, finite)
        move = finite & (grad_sq > self.param_groups[0]["eps"])
        gamma = torch.where(move, self._gamma(f, grad_sq, move), 0.0)
        neg_gamma = -gamma
        for group, ps, gs in zip(self.param_groups, per_group, grads):
            if ps:
                torch._foreach_addcmul_(ps, gs, [neg_gamma] * len(ps), value=group["lr"])
        g.update(step=g["step"] + 1, gamma=gamma, loss=f, grad_sq=grad_sq)
        self._after_step()
        return loss if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))

    # ----------------------------------------------------------------------------- read-outs (these sync)
    @property
    def last_step_size(self) -> float:
        """``lr * gamma`` of the last step (first group's lr); reading it synchronises with the device."""
        return float(self.state["global"]["gamma"]) * self.param_groups[0]["lr"]

    def diagnostics(self) -> dict[str, float | int]:
        """Host copies of the global scalars (steps taken, last gamma and ||g||, skipped-step counts)."""
        g = self.state["global"]
        return {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in g.items() if k != "optimizer"}

    def _everything(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]


class _PolyakFamily(_GlobalStepOptimizer):
    """Rules built on ``f - l*``."""


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
        track_best: keep a copy of the parameters with the lowest loss seen, updated on every step (vanishing
            gradients included; Algorithm 1's output); :meth:`restore_best` loads it. The paper turns it off
            for the neural networks. Costs one copy of the parameters when the loss improves (CPU), one
            lerp pass per step elsewhere.
        eps: ``||g||^2`` at or below ``eps`` counts as a vanishing gradient: no step.
        lr: a multiplier of the step (1 = the paper's rule); for schedulers and per-group scaling.

    Paper: Takezawa, Bao, Sato, Niwa, Yamada. Polyak Meets Parameter-free Clipped Gradient Descent. NeurIPS 2024.
    """

    def __init__(self, params: Iterable, T: int, lower_bound: float = 0.0, track_best: bool = True,
                 eps: float = 1e-12, lr: float = 1.0):
        check_int("T", T, min_value=1)
        check_finite("lower_bound", lower_bound)
        if not isinstance(track_best, bool):
            raise ValueError(f"track_best: expected a bool, got {track_best!r}")
        super().__init__(params, {"T": T, "lower_bound": lower_bound, "track_best": track_best}, eps, lr)

    def _init_global(self):
        return super()._init_global() | {"best_loss": self._scalar(math.inf)}

    def _before_update(self, loss, finite):
        if not self.param_groups[0]["track_best"]:
            return
        g = self.state["global"]
        improved = finite & (loss < g["best_loss"])
        g["best_loss"] = torch.where(improved, loss, g["best_loss"])
        everything = self._everything()
        best = [self.state[p].get("best") for p in everything]
        if any(b is None for b in best):  # first step: the current point is the only candidate
            best = [self.state[p].setdefault("best", p.detach().clone()) for p in everything]
        if self._host_flags:  # a host flag: copy only when the loss improved
            if improved:
                torch._foreach_copy_(best, everything)
        else:  # no sync: weight 1 copies the current point, 0 keeps the best (lerp is exact at 0 and 1)
            weight = improved.to(self._dtype)
            torch._foreach_lerp_(best, everything, [weight.to(p.dtype) for p in everything])

    def _gamma(self, loss, grad_sq, move):
        group = self.param_groups[0]
        return self._gap(loss, group["lower_bound"]) / (math.sqrt(group["T"]) * grad_sq.clamp(min=group["eps"]))

    @property
    def best_loss(self) -> float:
        """The lowest loss seen (at the point where it was evaluated)."""
        return float(self.state["global"]["best_loss"])

    @torch.no_grad()
    def restore_best(self) -> float:
        """Load the best iterate seen into the parameters; returns its loss."""
        if not self.param_groups[0]["track_best"]:
            raise RuntimeError("restore_best needs track_best=True")
        if not math.isfinite(self.best_loss):
            raise RuntimeError("no step with a finite loss has been taken yet: there is no best iterate")
        everything = [p for p in self._everything() if "best" in self.state[p]]
        torch._foreach_copy_(everything, [self.state[p]["best"] for p in everything])
        return self.best_loss


class Polyak(_PolyakFamily):
    """Polyak stepsize with the optimal value known: ``gamma = (f - f*) / ||g||^2`` (Polyak, 1987).

    Args:
        f_star: the optimal value f* (0 for interpolating networks, as the paper sets it); finite.
        max_step: optional cap on gamma (SPS_max of Loizou et al., 2021); ``inf`` is the paper's Polyak.
        lr: a multiplier of the step (1 = the rule).
    """

    def __init__(self, params: Iterable, f_star: float = 0.0, max_step: float = math.inf, eps: float = 1e-12,
                 lr: float = 1.0):
        check_finite("f_star", f_star)
        _positive_or_inf("max_step", max_step)
        super().__init__(params, {"f_star": f_star, "max_step": max_step}, eps, lr)

    def _gamma(self, loss, grad_sq, move):
        group = self.param_groups[0]
        return (self._gap(loss, group["f_star"]) / grad_sq.clamp(min=group["eps"])).clamp(max=group["max_step"])


class DecSPS(_PolyakFamily):
    """Decreasing SPS (Orvieto, Lacoste-Julien, Loizou; NeurIPS 2022, the rule named DecSPS; arXiv 2205.04583).

    ``gamma_t = (1/c_t) min{(f - l*) / ||g||^2, c_{t-1} gamma_{t-1}}`` with ``c_t = c_0 sqrt(t + 1)``,
    ``c_{-1} = c_0`` and ``gamma_{-1} = gamma_b``.

    Args:
        lower_bound: l* (finite).
        c0: the scale of ``c_t`` (the paper's c_0, 1 by default).
        gamma_b: the initial stepsize bound gamma_b.
        lr: a multiplier of the step (1 = the rule).
    """

    def __init__(self, params: Iterable, lower_bound: float = 0.0, c0: float = 1.0, gamma_b: float = 10.0,
                 eps: float = 1e-12, lr: float = 1.0):
        check_finite("lower_bound", lower_bound)
        check_positive("c0", c0)
        check_positive("gamma_b", gamma_b)
        super().__init__(params, {"lower_bound": lower_bound, "c0": c0, "gamma_b": gamma_b}, eps, lr)

    def _init_global(self):
        group = self.defaults
        return super()._init_global() | {"c_prev": self._scalar(group["c0"]), "gamma_prev": self._scalar(group["gamma_b"])}

    def _gamma(self, loss, grad_sq, move):
        group, g = self.param_groups[0], self.state["global"]
        c_t = self._scalar(group["c0"] * math.sqrt(g["step"] + 1))  # a tensor: overflows to inf, not an error
        polyak = self._gap(loss, group["lower_bound"]) / grad_sq.clamp(min=group["eps"])
        gamma = torch.minimum(polyak, g["c_prev"] * g["gamma_prev"]) / c_t
        g["gamma_prev"] = torch.where(move, gamma, g["gamma_prev"])
        g["c_prev"] = torch.where(move, c_t, g["c_prev"])
        return gamma


class AdaSPS(_PolyakFamily):
    """AdaSPS (Jiang & Stich, NeurIPS 2023, the rule labelled (AdaSPS); arXiv 2308.06058).

    ``gamma_t = min{(f_t - l*) / (c_p ||g_t||^2 sqrt(sum_{s<=t} (f_s - l*))), gamma_{t-1}}``, ``gamma_{-1} = inf``.

    Args:
        lower_bound: l* (finite).
        c_p: the scaling constant (1 by default; the paper's theory takes c_p >= 1/2 for convex losses).
        lr: a multiplier of the step (1 = the rule).
    """

    def __init__(self, params: Iterable, lower_bound: float = 0.0, c_p: float = 1.0, eps: float = 1e-12,
                 lr: float = 1.0):
        check_finite("lower_bound", lower_bound)
        check_positive("c_p", c_p)
        super().__init__(params, {"lower_bound": lower_bound, "c_p": c_p}, eps, lr)

    def _init_global(self):
        return super()._init_global() | {"gap_sum": self._scalar(0.0), "prev_gamma": self._scalar(math.inf)}

    def _gamma(self, loss, grad_sq, move):
        group, g = self.param_groups[0], self.state["global"]
        gap = self._gap(loss, group["lower_bound"])
        gap_sum = g["gap_sum"] + gap
        eps = group["eps"]
        gamma = torch.minimum(gap / (group["c_p"] * grad_sq.clamp(min=eps) * gap_sum.clamp(min=eps).sqrt()),
                              g["prev_gamma"])
        g["gap_sum"] = torch.where(move, gap_sum, g["gap_sum"])
        g["prev_gamma"] = torch.where(move, gamma, g["prev_gamma"])
        return gamma


class DoG(_GlobalStepOptimizer):
    """Distance over Gradients (Ivgi, Hinder, Carmon; ICML 2023, the "(DoG)" rule; arXiv 2302.12022), global
    (not the layer-wise L-DoG) version, without the iterate averaging the DoG authors recommend (as in the paper).

    ``gamma_t = max_{i<=t} ||x_i - x_0|| / sqrt(sum_{i<=t} ||g_i||^2)``, the distance floored at
    ``r_eps = reps_rel (1 + ||x_0||)``.

    Args:
        reps_rel: the relative initial movement (1e-6 in the paper).
        lr: a multiplier of the step (1 = the rule, as in the official ``dog-optimizer``).
    """

    def __init__(self, params: Iterable, reps_rel: float = 1e-6, eps: float = 1e-12, lr: float = 1.0):
        check_positive("reps_rel", reps_rel)
        super().__init__(params, {"reps_rel": reps_rel}, eps, lr)

    def _init_global(self):
        return super()._init_global() | {"grad_sq_sum": self._scalar(0.0), "max_dist": self._scalar(math.nan)}

    def _before_update(self, loss, finite):
        g, everything = self.state["global"], self._everything()
        if "x0" not in self.state[everything[0]]:  # the first step: remember x_0 and r_eps
            for p in everything:
                self.state[p]["x0"] = p.detach().clone()
            x0_norm = torch.stack(torch._foreach_norm(everything)).to(self._dtype).square().sum().sqrt()
            g["max_dist"] = self.param_groups[0]["reps_rel"] * (1 + x0_norm)

    def _gamma(self, loss, grad_sq, move):
        g = self.state["global"]
        g["grad_sq_sum"] = torch.where(move, g["grad_sq_sum"] + grad_sq, g["grad_sq_sum"])
        return g["max_dist"] / g["grad_sq_sum"].clamp(min=self.param_groups[0]["eps"]).sqrt()

    def _after_step(self):
        g = self.state["global"]
        everything = self._everything()
        diff = torch._foreach_sub(everything, [self.state[p]["x0"] for p in everything])
        dist = torch.stack(torch._foreach_norm(diff)).to(self._dtype).square().sum().sqrt()
        g["max_dist"] = torch.maximum(g["max_dist"], dist)


class ClippedSGD(_GlobalStepOptimizer):
    """(Clipped) gradient descent: ``lr * min(1, clip / ||g||)`` with the global gradient norm
    (``clip=inf``: plain SGD), the grid-tuned baseline of the paper.

    Args:
        lr: the learning rate (finite, > 0; may differ between parameter groups).
        clip: the clipping threshold c (``math.inf`` for none; not NaN).
    """

    def __init__(self, params: Iterable, lr: float, clip: float = math.inf, eps: float = 1e-12):
        check_positive("lr", lr)
        _positive_or_inf("clip", clip)
        super().__init__(params, {"clip": clip}, eps, lr)

    def _gamma(self, loss, grad_sq, move):
        group = self.param_groups[0]
        return (group["clip"] / grad_sq.sqrt().clamp(min=group["eps"])).clamp(max=1.0)


OPTIMIZERS = {"inexact_polyak": InexactPolyak, "polyak": Polyak, "decsps": DecSPS, "adasps": AdaSPS, "dog": DoG,
              "clipped_sgd": ClippedSGD}
