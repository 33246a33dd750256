"""The linear learning-dynamics argument (paper Sec. 4), integrated numerically.

Following Tian, Chen & Ganguli (2021), take a linear encoder z = W x (W: d x n), a linear CA3 predictor
W_p and a linear CA1 predictor W_g (d x d), isotropic data x ~ N(0, I), views x_i = x + e_i with
e_i ~ N(0, sigma^2 I), the original view x_ori = x, and the squared-error losses

    Sim-1 = 1/2 E|| W_p W x1 - sg(W x2) ||^2
    Sim-2 = 1/2 E|| W_g W_p W x1 - sg(W_o x) ||^2          (W_o = W: PhiNet; EMA of W: X-PhiNet)
    L     = Sim-1 + lambda Sim-2,   gradient flow with weight decay eta on every matrix.

With W_p, W_g symmetric and sharing eigenvectors with F = W W^T (an invariant subspace of the flow), each
eigenmode j evolves independently (s_j eigenvalue of F, p_j of W_p, g_j of W_g, k = 1 + sigma^2)::

    ds/dt = 2 s [ p (1 - k p) + lambda p g (1 - k p g) - eta ]
    dp/dt = alpha_p s [ (1 - k p) + lambda g (1 - k p g) ] - eta p
    dg/dt = alpha_g p s (1 - k p g) - eta g

SimSiam is lambda = 0. Because p(1 - k p) <= 1/(4k) and p g (1 - k p g) <= 1/(4k), every SimSiam mode
decays to s = 0 once eta > 1/(4k), while PhiNet keeps a positive fixed point up to eta = (1 + lambda)/(4k):
the extra predictor widens the range of weight decay without complete collapse.

* :func:`eigen_flow` integrates the per-mode ODE with RK4, vectorised over any grid of settings (fast path).
* :func:`matrix_flow` integrates the full matrix gradient flow of the expected loss with autograd (the
  reference, and the only one that covers X-PhiNet's EMA target); on aligned initialisations the eigenvalues
  of W W^T it produces match :func:`eigen_flow`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class FlowParams:
    """Settings of the linear model.

    Args:
        eta: weight decay.
        sigma2: augmentation noise variance sigma^2.
        lam: weight lambda of Sim-2 (0: SimSiam).
        alpha_p: relative learning rate of W_p (Tian et al.'s alpha_p).
        alpha_g: relative learning rate of W_g.
    """

    eta: float = 0.0
    sigma2: float = 0.5
    lam: float = 1.0
    alpha_p: float = 1.0
    alpha_g: float = 1.0

    def __post_init__(self) -> None:
        if self.eta < 0 or self.sigma2 < 0 or self.lam < 0 or self.alpha_p <= 0 or self.alpha_g <= 0:
            raise ValueError(f"need eta, sigma2, lam >= 0 and alpha_p, alpha_g > 0, got {self}")


def eigen_rhs(s: Tensor, p: Tensor, g: Tensor, eta: Tensor, sigma2: Tensor, lam: Tensor, alpha_p: Tensor,
              alpha_g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Right-hand side of the per-mode ODE (module docstring); every argument broadcasts."""
    k = 1 + sigma2
    r1 = 1 - k * p                                                   # Sim-1 residual factor
    r2 = 1 - k * p * g                                               # Sim-2 residual factor
    ds = 2 * s * (p * r1 + lam * p * g * r2 - eta)
    dp = alpha_p * s * (r1 + lam * g * r2) - eta * p
    dg = alpha_g * p * s * r2 - eta * g
    return ds, dp, dg


def eigen_flow(s0: float | Tensor, p0: float | Tensor, g0: float | Tensor, *, eta: float | Tensor,
               sigma2: float | Tensor = 0.5, lam: float | Tensor = 1.0, alpha_p: float | Tensor = 1.0,
               alpha_g: float | Tensor = 1.0, t_max: float = 200.0, dt: float = 0.01,
               record_every: int = 100) -> dict[str, Tensor]:
    """RK4 integration of the per-mode ODE over a broadcast grid of settings and initial values.

    Returns:
        {"t": (T,), "s": (T, *grid), "p": ..., "g": ...} sampled every ``record_every`` steps (float64).
    """
    as_t = lambda v: torch.as_tensor(v, dtype=torch.float64)
    eta, sigma2, lam, alpha_p, alpha_g = map(as_t, (eta, sigma2, lam, alpha_p, alpha_g))
    if (eta < 0).any() or (sigma2 < 0).any() or (lam < 0).any():
        raise ValueError("eta, sigma2 and lam must be >= 0")
    s, p, g = torch.broadcast_tensors(as_t(s0), as_t(p0), as_t(g0), eta, sigma2, lam)[:3]
    s, p, g = s.clone(), p.clone(), g.clone()
    f = lambda s, p, g: eigen_rhs(s, p, g, eta, sigma2, lam, alpha_p, alpha_g)
    n = int(round(t_max / dt))
    ts, S, P, G = [0.0], [s.clone()], [p.clone()], [g.clone()]
    for i in range(1, n + 1):
        k1 = f(s, p, g)
        k2 = f(*(x + 0.5 * dt * k for x, k in zip((s, p, g), k1)))
        k3 = f(*(x + 0.5 * dt * k for x, k in zip((s, p, g), k2)))
        k4 = f(*(x + dt * k for x, k in zip((s, p, g), k3)))
        s, p, g = (x + dt / 6 * (a + 2 * b + 2 * c + d) for x, a, b, c, d in zip((s, p, g), k1, k2, k3, k4))
        if i % record_every == 0 or i == n:
            ts.append(i * dt)
            S.append(s.clone())
            P.append(p.clone())
            G.append(g.clone())
    return {"t": torch.tensor(ts, dtype=torch.float64), "s": torch.stack(S), "p": torch.stack(P), "g": torch.stack(G)}


def critical_eta(sigma2: float, lam: float) -> float:
    """The weight decay above which no mode can stay non-collapsed: (1 + lambda) / (4 (1 + sigma^2))."""
    return (1 + lam) / (4 * (1 + sigma2))


def expected_loss(W: Tensor, Wp: Tensor, Wg: Tensor | None, W_target: Tensor, W_ori: Tensor, sigma2: float,
                  lam: float) -> Tensor:
    """The exact expectation of Sim-1 + lambda Sim-2 over x ~ N(0, I) and the view noise (targets detached).

    E|| A x1 - B x2 ||^2 = (1 + sigma^2) ||A||^2 - 2 <A, B> + (1 + sigma^2) ||B||^2 for independent views,
    and E|| A x1 - B x ||^2 = (1 + sigma^2) ||A||^2 - 2 <A, B> + ||B||^2 for the clean original.
    """
    k = 1 + sigma2
    A1, B1 = Wp @ W, W_target.detach()
    loss = 0.5 * (k * (A1 * A1).sum() - 2 * (A1 * B1).sum() + k * (B1 * B1).sum())
    if Wg is not None and lam:
        A2, B2 = Wg @ Wp @ W, W_ori.detach()
        loss = loss + lam * 0.5 * (k * (A2 * A2).sum() - 2 * (A2 * B2).sum() + (B2 * B2).sum())
    return loss


def matrix_flow(W0: Tensor, Wp0: Tensor, Wg0: Tensor | None, p: FlowParams, *, t_max: float = 50.0,
                dt: float = 0.01, ema_rate: float | None = None, record_every: int = 100) -> dict[str, Tensor]:
    """Euler integration of the full matrix gradient flow of :func:`expected_loss` with weight decay.

    Args:
        W0: (d, n) encoder; Wp0: (d, d) CA3 predictor; Wg0: (d, d) CA1 predictor or None (SimSiam).
        p: the settings (``p.lam`` is ignored when Wg0 is None).
        ema_rate: None: Sim-2 targets the encoder itself (PhiNet); a rate r: targets an EMA copy W_o with
            dW_o/dt = r (W - W_o) (X-PhiNet, r = (1 - beta) / dt in continuous time).

    Returns:
        {"t": (T,), "eig": (T, d) eigenvalues of W W^T in descending order}.
    """
    W = W0.clone().double().requires_grad_(True)
    Wp = Wp0.clone().double().requires_grad_(True)
    Wg = None if Wg0 is None else Wg0.clone().double().requires_grad_(True)
    Wo = W0.clone().double()
    lam = 0.0 if Wg is None else p.lam
    params = [W, Wp] + ([Wg] if Wg is not None else [])
    rates = [1.0, p.alpha_p] + ([p.alpha_g] if Wg is not None else [])
    n = int(round(t_max / dt))
    eig = lambda: torch.linalg.eigvalsh(W.detach() @ W.detach().T).flip(0)
    ts, E = [0.0], [eig()]
    for i in range(1, n + 1):
        target_ori = W if ema_rate is None else Wo
        loss = expected_loss(W, Wp, Wg, W, target_ori, p.sigma2, lam)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for x, gx, r in zip(params, grads, rates):
                x.add_(-dt * (r * gx + p.eta * x))
            if ema_rate is not None:
                Wo.add_(dt * ema_rate * (W - Wo))
        if i % record_every == 0 or i == n:
            ts.append(i * dt)
            E.append(eig())
    return {"t": torch.tensor(ts, dtype=torch.float64), "eig": torch.stack(E)}


def aligned_init(d: int, n: int, s0: Tensor, p0: Tensor, g0: Tensor, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Matrices whose eigen-decomposition is (s0, p0, g0): W = U diag(sqrt s0) V^T, W_p = U diag(p0) U^T, ...

    On these the matrix flow stays in the aligned subspace, so it must match :func:`eigen_flow` mode by mode.
    """
    if not (s0.shape == p0.shape == g0.shape == (d,)) or n < d:
        raise ValueError(f"need s0, p0, g0 of shape ({d},) and n >= d, got {tuple(s0.shape)}, {tuple(p0.shape)}, "
                         f"{tuple(g0.shape)}, n={n}")
    gen = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, d, generator=gen, dtype=torch.float64))
    W = U @ torch.diag(s0.double().sqrt()) @ V.T
    return W, U @ torch.diag(p0.double()) @ U.T, U @ torch.diag(g0.double()) @ U.T
