import pytest
import torch
from phinet.dynamics import (
    FlowParams,
    aligned_init,
    critical_eta,
    eigen_flow,
    eigen_rhs,
    expected_loss,
    matrix_flow,
)


def test_expected_loss_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    d, n, s2 = 3, 5, 0.3
    W, Wp, Wg = torch.randn(d, n, generator=g), torch.randn(d, d, generator=g), torch.randn(d, d, generator=g)
    N = 400_000
    x = torch.randn(N, n, generator=g)
    x1 = x + s2 ** 0.5 * torch.randn(N, n, generator=g)
    x2 = x + s2 ** 0.5 * torch.randn(N, n, generator=g)
    mc = 0.5 * ((x1 @ (Wp @ W).T - x2 @ W.T) ** 2).sum(1).mean() + \
        0.7 * 0.5 * ((x1 @ (Wg @ Wp @ W).T - x @ W.T) ** 2).sum(1).mean()
    exact = expected_loss(W, Wp, Wg, W, W, s2, 0.7)
    assert exact.item() == pytest.approx(mc.item(), rel=0.02)


def test_matrix_flow_matches_eigen_ode_on_aligned_init():
    d, n = 3, 5
    s0 = torch.tensor([0.6, 0.3, 0.05], dtype=torch.float64)
    p0 = torch.tensor([0.2, 0.4, 0.1], dtype=torch.float64)
    g0 = torch.tensor([0.5, 0.3, 0.8], dtype=torch.float64)
    W, Wp, Wg = aligned_init(d, n, s0, p0, g0)
    prm = FlowParams(eta=0.1, sigma2=0.5, lam=1.0)
    m = matrix_flow(W, Wp, Wg, prm, t_max=2.0, dt=0.002, record_every=1000)
    e = eigen_flow(s0, p0, g0, eta=0.1, sigma2=0.5, lam=1.0, t_max=2.0, dt=0.01, record_every=1000)
    torch.testing.assert_close(m["eig"][-1], e["s"][-1].sort(descending=True).values, rtol=2e-3, atol=1e-5)
    # SimSiam (no g, lambda = 0)
    m0 = matrix_flow(W, Wp, None, prm, t_max=2.0, dt=0.002, record_every=1000)
    e0 = eigen_flow(s0, p0, g0, eta=0.1, sigma2=0.5, lam=0.0, t_max=2.0, dt=0.01, record_every=1000)
    torch.testing.assert_close(m0["eig"][-1], e0["s"][-1].sort(descending=True).values, rtol=2e-3, atol=1e-5)


def test_simsiam_collapses_where_phinet_survives():
    eta = 0.25          # between 1/(4k) = 0.167 and (1 + 1)/(4k) = 0.333 at sigma^2 = 0.5
    assert critical_eta(0.5, 0.0) < eta < critical_eta(0.5, 1.0)
    s = eigen_flow(0.5, 0.3, 0.5, eta=eta, sigma2=0.5, lam=0.0, t_max=100, dt=0.1)["s"][-1]
    q = eigen_flow(0.5, 0.3, 0.5, eta=eta, sigma2=0.5, lam=1.0, t_max=100, dt=0.1)["s"][-1]
    assert s < 1e-6 < 0.1 < q


def test_rhs_fixed_point_at_origin_and_bad_params():
    z = torch.zeros(())
    ds, dp, dg = eigen_rhs(z, z, z, *(torch.tensor(v) for v in (0.1, 0.5, 1.0, 1.0, 1.0)))
    assert ds == dp == dg == 0
    with pytest.raises(ValueError):
        FlowParams(eta=-1.0)
    with pytest.raises(ValueError, match="shape"):
        aligned_init(3, 2, torch.ones(3), torch.ones(3), torch.ones(3))
