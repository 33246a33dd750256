import math

import pytest
import torch
from proper_loss_bounds.functional import (
    check_labels,
    check_simplex,
    kappa,
    lp_norm,
    min_quadratic_ratio,
    simplex_exit_time,
    sphere_adam,
    tangent_basis,
)

D = torch.float64


def test_check_simplex_accepts_and_clamps_rounding():
    q = torch.tensor([[0.5, 0.5, -1e-10], [0.2, 0.3, 0.5]], dtype=D)
    out = check_simplex(q)
    assert (out >= 0).all()


@pytest.mark.parametrize("q, msg", [
    (torch.tensor([0.5, 0.6, -0.1], dtype=D), "entries >= 0"),
    (torch.tensor([0.5, 0.6, 0.1], dtype=D), "sum to 1"),
    (torch.tensor([1.0], dtype=D), "at least K=2"),
    (torch.tensor([0.5, float("nan")], dtype=D), "finite"),
    (torch.tensor([1, 0]), "floating-point"),
])
def test_check_simplex_rejects(q, msg):
    with pytest.raises(ValueError, match=msg):
        check_simplex(q)


def test_check_simplex_class_count():
    with pytest.raises(ValueError, match="K=2"):
        check_simplex(torch.full((3,), 1 / 3, dtype=D), num_classes=2)


def test_check_labels():
    assert check_labels(torch.tensor([0, 2]), torch.Size([2]), 3).dtype == torch.long
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        check_labels(torch.tensor([0, 3]), torch.Size([2]), 3)
    with pytest.raises(ValueError, match="integer"):
        check_labels(torch.tensor([0.0, 1.0]), torch.Size([2]), 3)
    with pytest.raises(ValueError, match="batch shape"):
        check_labels(torch.tensor([0, 1, 2]), torch.Size([2]), 3)


@pytest.mark.parametrize("s", [1, 1.5, 2, 3, math.inf])
def test_lp_norm_matches_torch(s):
    v = torch.randn(7, 4, dtype=D)
    ref = torch.linalg.vector_norm(v, ord=s, dim=-1)
    assert torch.allclose(lp_norm(v, s), ref)
    with pytest.raises(ValueError, match=r"\[1, inf\]"):
        lp_norm(v, 0.5)


def test_tangent_basis():
    b = tangent_basis(5)
    assert torch.allclose(b.T @ b, torch.eye(4, dtype=D), atol=1e-12)
    assert torch.allclose(b.sum(0), torch.zeros(4, dtype=D), atol=1e-12)


def test_simplex_exit_time():
    p = torch.tensor([[0.5, 0.3, 0.2]], dtype=D)
    u = torch.tensor([[1.0, -1.0, 0.0]], dtype=D)
    assert torch.allclose(simplex_exit_time(p, u), torch.tensor([0.3], dtype=D))


def _dense_min(m, s, n=20000):
    k = m.shape[-1]
    v = torch.randn(n, k, dtype=D)
    v = v - v.mean(-1, keepdim=True)
    return float(((v @ m * v).sum(-1) / lp_norm(v, s) ** 2).min())


@pytest.mark.parametrize("s", [1, 2, 3, math.inf])
def test_min_quadratic_ratio_against_dense_sampling(s):
    torch.manual_seed(0)
    a = torch.randn(4, 4, dtype=D)
    m = a @ a.T + 0.1 * torch.eye(4, dtype=D)
    got = float(min_quadratic_ratio(m, s))
    dense = _dense_min(m, s)
    assert got <= dense + 1e-9  # a minimum is below every sample
    assert got >= dense * 0.97  # and close to the best sample


def test_min_quadratic_ratio_batched_and_singular():
    m = torch.stack([torch.eye(3, dtype=D) * 2, torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=D))])
    out = min_quadratic_ratio(m, 2)
    assert out.shape == (2,)
    assert torch.allclose(out[0], torch.tensor(2.0, dtype=D))
    assert float(out[1]) == pytest.approx(0.0, abs=1e-12)  # flat along e2 - e3


@pytest.mark.parametrize("s", [1, 2, math.inf])
def test_kappa_closed_cases(s):
    # r = 1: the log-loss case, 2^{2-2/s}
    expect = 4.0 if math.isinf(s) else 2 ** (2 - 2 / s)
    assert kappa(1.0, s, 3) == pytest.approx(expect, rel=1e-4)
    assert kappa(s if not math.isinf(s) else 2.0, s if not math.isinf(s) else 2.0, 4) == pytest.approx(1.0, rel=1e-6)


def test_sphere_adam_minimises():
    z0 = torch.randn(8, 3, dtype=D)
    target = torch.tensor([1.0, 0.0, 0.0], dtype=D)
    z = sphere_adam(lambda z: -(z * target).sum(-1), z0, steps=300, lr=0.05)
    assert float((z @ target).min()) > 1 - 1e-4  # on the sphere, at the maximiser of <z, target>
    assert torch.allclose(z.norm(dim=-1), torch.ones(8, dtype=D))
