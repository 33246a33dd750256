import pytest
import torch
from listdec_fl import aggregators as A


@pytest.fixture
def pts():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 9, 17, generator=g, dtype=torch.float64)  # 3 runs, 9 clients, d = 17


@pytest.mark.parametrize("n", [1, 2, 7, 8])
def test_fast_matches_reference(n):
    g = torch.Generator().manual_seed(n)
    u = torch.randn(2, n, 11, generator=g, dtype=torch.float64)
    for r in range(2):
        torch.testing.assert_close(A.fedavg(u)[r], A.fedavg_reference(u[r]))
        torch.testing.assert_close(A.median(u)[r], A.median_reference(u[r]))
        for beta in (0.0, 0.1, 0.3, 0.6):
            torch.testing.assert_close(A.trimmed_mean(u, beta)[r], A.trimmed_mean_reference(u[r], beta))
        for it in (1, 3, 50):
            torch.testing.assert_close(A.geomed(u, it)[r], A.geomed_reference(u[r], it), atol=1e-9, rtol=1e-7)
        for f in (0, 1, 3, n):
            torch.testing.assert_close(A.krum(u, f)[r], A.krum_reference(u[r], f))
            torch.testing.assert_close(A.multikrum(u, f, 3)[r], A.krum_reference(u[r], f, m=min(3, n)))
        torch.testing.assert_close(A.normclip(u, 0.5)[r], A.normclip_reference(u[r], 0.5))


def test_median_matches_numpy(pts):
    import numpy as np

    np.testing.assert_allclose(A.median(pts).numpy(), np.median(pts.numpy(), axis=1))


def test_trim_count_keeps_one_value():
    assert A.trim_count(35, 0.6) == 17 and A.trim_count(34, 0.6) == 16 and A.trim_count(10, 0.2) == 2
    assert A.trim_count(10, 0.0) == 0


def test_robust_to_minority_outliers():
    g = torch.Generator().manual_seed(1)
    honest = torch.randn(1, 14, 5, generator=g) * 0.01 + 1.0
    bad = torch.full((1, 6, 5), 1e3)
    u = torch.cat([honest, bad], dim=1)
    for out in (A.median(u), A.trimmed_mean(u, 0.3), A.geomed(u, 100), A.krum(u, 6), A.multikrum(u, 6)):
        assert (out - 1.0).abs().max() < 0.1
    assert (A.fedavg(u) - 1.0).abs().max() > 100
    assert torch.linalg.vector_norm(A.normclip(u, 0.2)) <= 0.2 + 1e-6


def test_geomed_converges_to_weiszfeld_fixed_point():
    u = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]]], dtype=torch.float64)
    z = A.geomed(u, 500, tol=0.0)[0]
    # first-order optimality of the geometric median: sum of unit vectors ~ 0
    unit = (u[0] - z) / torch.linalg.vector_norm(u[0] - z, dim=1, keepdim=True)
    assert torch.linalg.vector_norm(unit.sum(0)) < 1e-3


def test_dispatch_and_bad_input(pts):
    for name in ("fedavg", "median", "trimmed_mean", "geomed", "krum", "multikrum", "normclip"):
        out = A.aggregate(name, pts, alpha=0.2, n_byzantine=2)
        assert out.shape == (3, 17) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="aggregator"):
        A.aggregate("bulyan", pts, alpha=0.2, n_byzantine=2)
    with pytest.raises(ValueError, match="expected shape"):
        A.median(torch.zeros(4, 5))
