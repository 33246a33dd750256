import math

import numpy as np
import pytest
import torch
from proper_loss_bounds import (
    BinaryExponentialLoss,
    BinaryLogisticLoss,
    BrierLoss,
    LogLoss,
    PseudoSphericalLoss,
    SavageLoss,
    SphericalLoss,
    TsallisLoss,
    ZeroOneLoss,
    get_loss,
    quartic_bayes_risk,
    regret_reference,
)

D = torch.float64
MULTI = ["log", "brier", "spherical", "pseudo-spherical-1.5", "pseudo-spherical-3", "tsallis-0.5",
         "tsallis-1.5", "tsallis-3", "quartic", "zero-one"]
BINARY = ["binary-logistic", "binary-exponential"]


def _pairs(k, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(2, n, k, dtype=D).exponential_(generator=g)
    x = x / x.sum(-1, keepdim=True)
    return x[0], x[1]


def _k(name):
    return 2 if name in BINARY else 3


@pytest.mark.parametrize("name", MULTI + BINARY)
def test_regret_matches_definition_loop(name):
    loss = get_loss(name)
    q, p = _pairs(_k(name))
    fast = loss.regret(q, p)
    ref = regret_reference(loss, q.numpy(), p.numpy())
    np.testing.assert_allclose(fast.numpy(), ref, rtol=1e-9, atol=1e-12)
    assert (fast >= -1e-14).all()
    assert torch.allclose(loss.regret(p, p), torch.zeros(len(p), dtype=D), atol=1e-12)


@pytest.mark.parametrize("name", MULTI + BINARY)
def test_bayes_risk_is_risk_at_truth_and_regret_is_excess_risk(name):
    loss = get_loss(name)
    q, p = _pairs(_k(name), seed=1)
    assert torch.allclose(loss.bayes_risk(p), loss.risk(p, p), atol=1e-12)
    assert torch.allclose(loss.risk(q, p) - loss.bayes_risk(p), loss.regret(q, p), atol=1e-11)
    y = torch.randint(0, _k(name), (len(q),))
    assert torch.allclose(loss.loss(q, y), loss.losses(q).gather(-1, y[:, None])[:, 0])


@pytest.mark.parametrize("name", [n for n in MULTI + BINARY if n != "zero-one"])
def test_closed_form_losses_are_the_savage_representation(name):
    loss = get_loss(name)
    q, _ = _pairs(_k(name), seed=2)
    savage = SavageLoss(loss._bayes, num_classes=loss.num_classes)
    assert torch.allclose(loss.losses(q), savage.losses(q), atol=1e-10)


@pytest.mark.parametrize("name", [n for n in MULTI + BINARY if n != "zero-one"])
def test_gradient_and_hessian_match_autograd(name):
    loss = get_loss(name)
    q, _ = _pairs(_k(name), n=4, seed=3)
    for row in q:
        x = row.clone().requires_grad_(True)
        (g_auto,) = torch.autograd.grad(loss._bayes(x), x)
        assert torch.allclose(loss.grad_bayes_risk(row), g_auto, atol=1e-10)
        # Hessian: central differences of the (autograd-checked) gradient
        eps = 1e-6
        eye = torch.eye(len(row), dtype=D)
        h_fd = torch.stack([(loss._grad_bayes(row + eps * e) - loss._grad_bayes(row - eps * e)) / (2 * eps)
                            for e in eye])
        h = loss.hessian_bayes_risk(row)
        assert torch.allclose(h, h.T, atol=1e-9)
        assert torch.allclose(h, h_fd, atol=1e-5 * float(h.abs().max()) + 1e-7)
    y = torch.randint(0, _k(name), (len(q),))
    x = q.clone().requires_grad_(True)
    (g_loss,) = torch.autograd.grad(loss._losses(x).gather(-1, y[:, None]).sum(), x)
    # equal up to the simplex normal (the all-ones vector): compare tangent parts
    diff = loss.loss_grad(q, y) - g_loss
    assert torch.allclose(diff - diff.mean(-1, keepdim=True), torch.zeros_like(diff), atol=1e-9)


def test_numpy_in_numpy_out_and_torch_in_torch_out():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    out = LogLoss().regret(q, p)
    assert isinstance(out, np.ndarray)
    assert float(out) == pytest.approx(float(np.sum(p * np.log(p / q))))
    t = LogLoss().regret(torch.tensor(q), torch.tensor(p))
    assert isinstance(t, torch.Tensor)
    assert LogLoss().loss([0.25, 0.75], 1) == pytest.approx(-math.log(0.75))
    f32 = BrierLoss().regret(torch.tensor(q, dtype=torch.float32), torch.tensor(p, dtype=torch.float32))
    assert f32.dtype == torch.float32


def test_batched_broadcasting():
    p = torch.tensor([0.2, 0.3, 0.5], dtype=D)
    q, _ = _pairs(3, n=5)
    out = BrierLoss().regret(q.reshape(5, 1, 3), p)
    assert out.shape == (5, 1)
    assert torch.allclose(out[:, 0], ((q - p) ** 2).sum(-1))


def test_family_relations():
    q, p = _pairs(4, seed=5)
    assert torch.allclose(TsallisLoss(2.0).regret(q, p), BrierLoss().regret(q, p), atol=1e-12)
    assert torch.allclose(TsallisLoss(1 + 1e-7).regret(q, p), LogLoss().regret(q, p), rtol=1e-5)
    assert torch.allclose(SphericalLoss().losses(q), PseudoSphericalLoss(2.0).losses(q))
    q2, p2 = _pairs(2, seed=6)
    assert torch.allclose(BinaryLogisticLoss().regret(q2, p2), LogLoss().regret(q2, p2))


def test_known_values():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=D)
    q = torch.tensor([0.4, 0.4, 0.2], dtype=D)
    assert float(BrierLoss().regret(q, p)) == pytest.approx(0.02)
    assert float(SphericalLoss().bayes_risk(p)) == pytest.approx(-math.sqrt(0.38))
    # exponential loss with the sigmoid(2f) link is AdaBoost's exp(-y f)
    f = 0.7
    eta = 1 / (1 + math.exp(-2 * f))
    qb = torch.tensor([1 - eta, eta], dtype=D)
    e = BinaryExponentialLoss()
    assert float(e.loss(qb, torch.tensor(1))) == pytest.approx(math.exp(-f))
    assert float(e.loss(qb, torch.tensor(0))) == pytest.approx(math.exp(f))
    assert float(e.bayes_risk(torch.tensor([0.5, 0.5], dtype=D))) == pytest.approx(1.0)


def test_zero_one_loss_ties_and_regret():
    z = ZeroOneLoss()
    q = torch.tensor([[0.4, 0.4, 0.2], [0.1, 0.2, 0.7]], dtype=D)
    assert torch.allclose(z.losses(q)[0], torch.tensor([0.5, 0.5, 1.0], dtype=D))
    p = torch.tensor([0.6, 0.3, 0.1], dtype=D)
    assert float(z.regret(torch.tensor([0.5, 0.4, 0.1], dtype=D), p)) == 0.0  # same argmax: zero regret
    assert float(z.regret(q[1], p)) == pytest.approx(0.5)
    assert not z.strictly_proper and not z.differentiable


def test_quartic_regret_at_centre():
    loss = get_loss("quartic")
    p = torch.full((3,), 1 / 3, dtype=D)
    q = torch.tensor([0.4, 0.3, 1 / 3 - 0.1 + 0.1 - 0.0333333333333333], dtype=D)
    q = q / q.sum()
    assert float(loss.regret(q, p)) == pytest.approx(3 * float(((q - p) ** 4).sum()), rel=1e-9)
    assert quartic_bayes_risk(p).shape == ()


def test_log_loss_zero_probability_raises_unless_clipped():
    q = np.array([0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="infinite at zero"):
        LogLoss().loss(q, 0)
    with pytest.raises(ValueError, match="clip"):
        LogLoss().regret(q, np.array([0.2, 0.4, 0.4]))
    assert LogLoss().loss(q, 1) == pytest.approx(math.log(2))  # zero elsewhere is fine
    assert float(LogLoss().regret(q, np.array([0.0, 0.5, 0.5]))) == pytest.approx(0.0)
    clipped = LogLoss(clip=1e-6).loss(q, 0)
    assert np.isfinite(clipped) and clipped > 13
    with pytest.raises(ValueError, match="clip"):
        LogLoss(clip=0.7)


@pytest.mark.parametrize("make, msg", [
    (lambda: TsallisLoss(1.0), "alpha != 1"),
    (lambda: TsallisLoss(0.0), "alpha > 0"),
    (lambda: TsallisLoss(-2), "alpha > 0"),
    (lambda: PseudoSphericalLoss(1.0), "1 < alpha"),
    (lambda: PseudoSphericalLoss(0.5), "1 < alpha"),
    (lambda: BinaryLogisticLoss(num_classes=3), "K=2"),
    (lambda: get_loss("hinge"), "unknown loss"),
    (lambda: SavageLoss(3), "callable"),
])
def test_bad_parameters(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_bad_inputs():
    loss = BrierLoss()
    with pytest.raises(ValueError, match="sum to 1"):
        loss.regret([0.5, 0.6, 0.1], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="entries >= 0"):
        loss.bayes_risk([1.2, -0.2])
    with pytest.raises(ValueError, match=r"labels y must be in \[0, 2\]"):
        loss.loss([0.2, 0.3, 0.5], 3)
    with pytest.raises(ValueError, match="integer"):
        loss.loss([0.2, 0.3, 0.5], 1.0)
    with pytest.raises(ValueError, match="K=2"):
        BinaryExponentialLoss().regret([0.2, 0.3, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="same number of classes"):
        loss.regret(np.full((2, 3), 1 / 3), np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="broadcastable"):
        loss.regret(np.full((2, 3), 1 / 3), np.full((5, 3), 1 / 3))


def test_get_loss_specs():
    assert get_loss("tsallis-1.5").alpha == 1.5
    assert get_loss("pseudo-spherical(3)").alpha == 3.0
    assert get_loss("Brier").name == "brier"
    assert repr(get_loss("tsallis-3")) == "TsallisLoss(alpha=3.0)"
    lg = LogLoss()
    assert get_loss(lg) is lg
