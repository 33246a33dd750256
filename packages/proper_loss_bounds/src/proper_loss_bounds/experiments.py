"""The learning-curve experiment: ‖q̂ - p‖_s against the surrogate regret for softmax regression.

Data with known class probabilities: ``x ~ N(0, I_d)``, ``p(y|x) = softmax(W* x + b*)``. For each
proper loss and sample size ``n`` a softmax regression is fitted by damped Newton on the empirical
composite loss (gradient from the fused :class:`ProperLossModule`, Hessian by autograd of the closed
form). On fresh test points we average ``‖q̂(x) - p(x)‖_s`` and ``R(q̂(x); p(x))``. Strong properness
gives ``‖q̂ - p‖_s <= sqrt(2 R / λ_s)`` pointwise, hence ``E‖q̂ - p‖_s <= sqrt(2 E[R] / λ_s)`` (Jensen);
as ``n`` grows both sides shrink with ``E‖q̂ - p‖ ∝ E[R]^{1/2}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from proper_loss_bounds.bounds import loglog_slope, strong_properness_constant
from proper_loss_bounds.config import LearningCurveConfig
from proper_loss_bounds.functional import lp_norm
from proper_loss_bounds.losses import ProperLoss, get_loss
from proper_loss_bounds.modules import composite_loss

__all__ = ["SyntheticTask", "fit_softmax_regression", "learning_curve"]

_DT = torch.float64


@dataclass
class SyntheticTask:
    """``x ~ N(0, I_d)``, ``p(y | x) = softmax(W x + b)`` with known ``W (K, d)``, ``b (K,)``."""

    weight: Tensor
    bias: Tensor

    @classmethod
    def make(cls, num_classes: int, dim: int, weight_scale: float, seed: int) -> SyntheticTask:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(num_classes, dim, dtype=_DT, generator=g) * weight_scale / math.sqrt(dim)
        b = torch.randn(num_classes, dtype=_DT, generator=g) * 0.5
        return cls(w, b)

    def probs(self, x: Tensor) -> Tensor:
        return torch.softmax(x @ self.weight.T + self.bias, -1)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.randn(n, self.weight.shape[1], dtype=_DT, generator=generator)
        p = self.probs(x)
        y = torch.multinomial(p, 1, generator=generator).squeeze(-1)
        return x, y, p


def fit_softmax_regression(x: Tensor, y: Tensor, loss: ProperLoss | str, *, max_iter: int = 100,
                           tol: float = 1e-9) -> tuple[Tensor, Tensor, dict]:
    """Minimise the empirical proper composite loss of ``softmax(W x + b)`` by damped Newton.

    Args:
        x: ``(n, d)`` inputs; ``y``: ``(n,)`` labels.
        loss: the proper loss (softmax link).
        max_iter: Newton iterations.
        tol: stop when the gradient's max-norm is below ``tol``.

    Returns:
        ``(W (K, d), b (K,), info)`` with ``info = {"iters", "grad_norm"}``.
    """
    loss = get_loss(loss)
    n, d = x.shape
    k = int(y.max()) + 1 if loss.num_classes is None else loss.num_classes
    k = max(k, 2)
    xb = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)  # (n, d+1)

    def objective(theta: Tensor, fused: bool) -> Tensor:
        z = xb @ theta.view(k, d + 1).T  # (n, K)
        return composite_loss(z, y, loss, fused=fused).mean()

    theta = torch.zeros(k * (d + 1), dtype=x.dtype)
    damping = 1e-6
    gnorm = math.inf
    iters = 0
    for _ in range(max_iter):
        iters += 1
        th = theta.clone().requires_grad_(True)
        f = objective(th, fused=True)
        (grad,) = torch.autograd.grad(f, th)  # the fused closed-form gradient
        gnorm = float(grad.abs().max())
        if gnorm < tol:
            break
        hess = torch.autograd.functional.hessian(lambda t: objective(t, fused=False), theta)
        hess = 0.5 * (hess + hess.T)
        f0 = float(f.detach())
        while True:
            try:
                step = torch.linalg.solve(hess + damping * torch.eye(len(theta), dtype=x.dtype), grad)
            except RuntimeError:
                damping *= 10
                continue
            accepted = False
            t = 1.0
            for _ in range(30):
                cand = theta - t * step
                with torch.no_grad():
                    fc = float(objective(cand, fused=False))
                if fc <= f0 - 1e-4 * t * float(grad @ step):
                    accepted = True
                    break
                t *= 0.5
            if accepted or damping > 1e8:
                break
            damping *= 10
        if not accepted:
            break
        theta = cand
        damping = max(damping / 10, 1e-9)
    w = theta.view(k, d + 1)
    return w[:, :d].clone(), w[:, d].clone(), {"iters": iters, "grad_norm": gnorm}


def learning_curve(cfg: LearningCurveConfig, *, progress: bool = True) -> dict:
    """Run the learning-curve experiment.

    Returns:
        ``{"config", "runs": [per (loss, n, seed): mean_err, mean_regret, max_bound_ratio, ...],
        "fits": {loss: {"exponent", "constant", "lambda", "predicted_constant", ...}}}``.
    """
    from tqdm.auto import tqdm

    task = SyntheticTask.make(cfg.num_classes, cfg.dim, cfg.weight_scale, cfg.data_seed)
    gt = torch.Generator().manual_seed(cfg.data_seed + 1)
    x_test, _, p_test = task.sample(cfg.num_test, gt)
    runs = []
    jobs = [(name, n, seed) for name in cfg.losses for n in cfg.sample_sizes for seed in cfg.seeds]
    lambdas = {name: strong_properness_constant(get_loss(name), s=cfg.norm, num_classes=cfg.num_classes)
               for name in cfg.losses}
    for name, n, seed in tqdm(jobs, desc="learning curve", disable=not progress):
        loss = get_loss(name)
        g = torch.Generator().manual_seed(10_000 * seed + n)
        x, y, _ = task.sample(n, g)
        w, b, info = fit_softmax_regression(x, y, loss, max_iter=cfg.max_iter)
        q_test = torch.softmax(x_test @ w.T + b, -1)
        err = lp_norm(q_test - p_test, cfg.norm)
        reg = loss._regret(q_test, p_test).clamp_min(0)
        lam = lambdas[name]
        bound = torch.sqrt(2 * reg / lam) if lam > 0 else torch.full_like(reg, math.inf)
        ratio = torch.where(bound > 0, err / bound, torch.zeros_like(err))
        runs.append({"loss": name, "n": n, "seed": seed, "mean_err": float(err.mean()),
                     "mean_regret": float(reg.mean()), "max_bound_ratio": float(ratio.max()),
                     "newton_iters": info["iters"], "grad_norm": info["grad_norm"]})
    fits = {}
    for name in cfg.losses:
        rs = [r for r in runs if r["loss"] == name]
        ns = sorted({r["n"] for r in rs})
        err = np.array([np.mean([r["mean_err"] for r in rs if r["n"] == n]) for n in ns])
        reg = np.array([np.mean([r["mean_regret"] for r in rs if r["n"] == n]) for n in ns])
        expo = loglog_slope(reg, err)
        const = float(np.exp(np.mean(np.log(err) - expo * np.log(reg))))
        lam = lambdas[name]
        pred = math.sqrt(2 / lam) if lam > 0 else math.inf
        fits[name] = {
            "n": ns, "mean_err": err.tolist(), "mean_regret": reg.tolist(),
            "exponent": expo, "constant": const, "lambda": lam, "predicted_constant": pred,
            # E‖q̂-p‖ / sqrt(E R) per n: must not exceed sqrt(2/λ) (Jensen + strong properness)
            "err_over_sqrt_regret": (err / np.sqrt(reg)).tolist(),
            "max_bound_ratio": max(r["max_bound_ratio"] for r in rs),
            "err_slope_in_n": loglog_slope(np.array(ns, dtype=float), err),
        }
    return {"config": cfg.to_dict(), "runs": runs, "fits": fits}
