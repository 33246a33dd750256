import math

import pytest
import torch
from proper_loss_bounds import LogLoss, ProperLossModule, composite_loss, get_loss

D = torch.float64
TRAINABLE = ["log", "brier", "spherical", "pseudo-spherical-1.5", "pseudo-spherical-3", "tsallis-0.5",
             "tsallis-1.5", "tsallis-3", "quartic"]


@pytest.mark.parametrize("name", TRAINABLE)
def test_fused_gradient_matches_autograd_of_closed_form(name):
    torch.manual_seed(0)
    z = (3 * torch.randn(6, 4, dtype=D)).requires_grad_(True)
    y = torch.randint(0, 4, (6,))
    w = torch.rand(6, dtype=D)  # a non-uniform upstream gradient
    fused = (composite_loss(z, y, name, fused=True) * w).sum()
    (g_fused,) = torch.autograd.grad(fused, z)
    ref = (composite_loss(z, y, name, fused=False) * w).sum()
    (g_ref,) = torch.autograd.grad(ref, z)
    assert torch.allclose(fused, ref, atol=1e-12)
    assert torch.allclose(g_fused, g_ref, atol=1e-9, rtol=1e-7)


def test_log_loss_is_cross_entropy_and_stable_at_extreme_logits():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [0.3, 0.2, 0.1]], dtype=D, requires_grad=True)
    y = torch.tensor([2, 0])
    out = ProperLossModule("log", reduction="sum")(z, y)
    ref = torch.nn.functional.cross_entropy(z, y, reduction="sum")
    assert torch.allclose(out, ref)
    (g,) = torch.autograd.grad(out, z)
    assert torch.isfinite(g).all()
    assert torch.allclose(g, torch.softmax(z, -1) - torch.nn.functional.one_hot(y, 3))


def test_sigmoid_link_binary_losses():
    f = torch.linspace(-3, 3, 7, dtype=D)
    y = (torch.arange(7) % 2)
    sign = 2 * y.to(D) - 1
    logistic = composite_loss(f, y, "binary-logistic", link="sigmoid")
    assert torch.allclose(logistic, torch.nn.functional.softplus(-sign * f))
    expo = composite_loss(2 * f, y, "binary-exponential", link="sigmoid")  # score 2f -> exp(-y f)
    assert torch.allclose(expo, torch.exp(-sign * f))


def test_identity_and_callable_links():
    q = torch.tensor([[0.2, 0.3, 0.5]], dtype=D, requires_grad=True)
    y = torch.tensor([1])
    out = composite_loss(q, y, "brier", link="identity")
    (g,) = torch.autograd.grad(out.sum(), q)
    assert torch.allclose(g, 2 * (q - torch.tensor([[0.0, 1.0, 0.0]], dtype=D)))
    z = torch.randn(4, 3, dtype=D)
    a = composite_loss(z, torch.tensor([0, 1, 2, 0]), "spherical", link=lambda s: torch.softmax(s, -1))
    b = composite_loss(z, torch.tensor([0, 1, 2, 0]), "spherical")
    assert torch.allclose(a, b)


def test_reductions_and_float32():
    z = torch.randn(5, 3)
    y = torch.randint(0, 3, (5,))
    none = ProperLossModule("tsallis-1.5", reduction="none")(z, y)
    assert none.shape == (5,) and none.dtype == torch.float32
    assert torch.allclose(ProperLossModule("tsallis-1.5")(z, y), none.mean())
    assert torch.allclose(ProperLossModule("tsallis-1.5", reduction="sum")(z, y), none.sum())


def test_module_errors():
    with pytest.raises(ValueError, match="zero gradient"):
        ProperLossModule("zero-one")
    with pytest.raises(ValueError, match="reduction"):
        ProperLossModule("log", reduction="avg")
    with pytest.raises(ValueError, match="link"):
        ProperLossModule("log", link="probit")
    crit = ProperLossModule("log")
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        crit(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="batch shape"):
        crit(torch.randn(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="K=2"):
        ProperLossModule("binary-exponential")(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="simplex"):
        ProperLossModule("brier", link="identity")(torch.randn(2, 3), torch.tensor([0, 1]))


def test_double_backward_is_refused_not_silently_wrong():
    z = torch.randn(3, 3, dtype=D, requires_grad=True)
    out = composite_loss(z, torch.tensor([0, 1, 2]), "brier").sum()
    (g,) = torch.autograd.grad(out, z, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), z)


def test_training_recovers_probabilities():
    torch.manual_seed(0)
    p_true = torch.tensor([0.6, 0.3, 0.1])
    y = torch.multinomial(p_true, 4000, replacement=True)
    logits = torch.zeros(3, requires_grad=True)
    crit = ProperLossModule("spherical")
    for _ in range(200):
        loss = crit(logits.expand(len(y), 3), y)
        (g,) = torch.autograd.grad(loss, logits)
        with torch.no_grad():
            logits -= 2.0 * g
    q = torch.softmax(logits.detach(), -1)
    assert torch.allclose(q, p_true, atol=0.03)
    assert math.isfinite(float(loss.detach()))


def test_as_module():
    m = LogLoss().as_module()
    assert isinstance(m, ProperLossModule) and "LogLoss" in repr(m)
    assert get_loss("log").as_module(reduction="none").reduction == "none"


@pytest.mark.parametrize("name", ["brier", "spherical", "pseudo-spherical-3", "tsallis-1.5", "tsallis-3"])
def test_closed_form_path_batched_shapes_and_retained_graph(name):
    """The closed-form softmax path on (2, 3, K) scores, float32, matches autograd; a retained graph gives
    the same gradient twice (the backward must not overwrite what it saved)."""
    torch.manual_seed(1)
    z = (2 * torch.randn(2, 3, 7)).requires_grad_(True)
    y = torch.randint(0, 7, (2, 3))
    out = composite_loss(z, y, name).sum()
    (g1,) = torch.autograd.grad(out, z, retain_graph=True)
    (g2,) = torch.autograd.grad(out, z)
    ref = composite_loss(z, y, name, fused=False).sum()
    (g_ref,) = torch.autograd.grad(ref, z)
    assert torch.allclose(out, ref, atol=1e-5) and torch.equal(g1, g2)
    assert torch.allclose(g1, g_ref, atol=1e-6, rtol=1e-4)


def test_closed_form_path_rejects_nan_and_inf_scores():
    z = torch.randn(4, 5)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="scores must be finite"):
            ProperLossModule("brier")(z.index_fill(1, torch.tensor([2]), bad), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("name", ["brier", "spherical", "tsallis-1.5"])
def test_closed_form_path_accepts_minus_inf_as_probability_zero(name):
    """A -inf score is a class of probability 0 (as in F.cross_entropy): same loss and gradient as dropping it."""
    z = torch.randn(3, 5, dtype=D, requires_grad=True)
    y = torch.tensor([0, 1, 3])
    masked = z.index_fill(1, torch.tensor([2]), -math.inf)
    (g,) = torch.autograd.grad(composite_loss(masked, y, name).sum(), z)
    keep = torch.tensor([0, 1, 3, 4])
    (g_ref,) = torch.autograd.grad(composite_loss(z[:, keep], torch.tensor([0, 1, 2]), name).sum(), z)
    assert torch.isfinite(g).all() and torch.allclose(g, g_ref, atol=1e-12)
