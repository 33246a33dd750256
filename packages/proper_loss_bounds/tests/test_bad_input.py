"""Issue 20: bad input gets a clear error naming the argument (these cases passed silently before)."""

import pytest
import torch
from proper_loss_bounds import BrierLoss, LogLoss, SavageLoss, check_properness, regret_bound
from proper_loss_bounds.bounds import strong_properness_constant
from proper_loss_bounds.modules import ProperLossModule


@pytest.mark.parametrize("delta", [-1.0, 0.0, float("nan")])
def test_check_properness_rejects_bad_delta(delta):
    # delta = -1 used to return strictly_proper=False for the log loss (a wrong verdict)
    with pytest.raises(ValueError, match="delta: expected a finite number > 0"):
        check_properness(LogLoss(), delta=delta)


@pytest.mark.parametrize("kw, name", [({"num_candidates": 0}, "num_candidates"),
                                      ({"num_candidates": -5}, "num_candidates"),
                                      ({"refine_rounds": -1}, "refine_rounds")])
def test_regret_bound_rejects_nonpositive_sizes(kw, name):
    with pytest.raises(ValueError, match=f"{name}: expected an int"):
        regret_bound(BrierLoss(), [1e-3], **kw)


@pytest.mark.parametrize("kw, name", [({"num_points": 0}, "num_points"), ({"refine_rounds": -2}, "refine_rounds")])
def test_strong_properness_rejects_nonpositive_sizes(kw, name):
    with pytest.raises(ValueError, match=f"{name}: expected an int"):
        strong_properness_constant(BrierLoss(), method="numeric", **kw)


@pytest.mark.parametrize("num_p", [0, -1])
def test_check_properness_rejects_nonpositive_num_p(num_p):
    with pytest.raises(ValueError, match="num_p: expected an int >= 1"):
        check_properness(BrierLoss(), num_p=num_p)


def test_savage_loss_with_nan_bayes_risk_is_rejected():
    bad = SavageLoss(lambda p: torch.full(p.shape[:-1], float("nan"), dtype=p.dtype), name="nan-risk")
    q = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    with pytest.raises(ValueError, match="nan-risk: bayes_risk\\(p\\) must be a number"):
        bad.bayes_risk(q)


def test_empty_batch_mean_is_an_error():
    mod = ProperLossModule("brier")
    with pytest.raises(ValueError, match="scores: expected a non-empty batch"):
        mod(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    out = ProperLossModule("brier", reduction="sum")(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert float(out) == 0.0


def test_float32_dirichlet_samples_cast_to_float64_pass_the_simplex_check():
    g = torch.Generator().manual_seed(0)
    q32 = torch.empty(4096, 5).exponential_(generator=g)  # Dirichlet(1) in float32: normalised exponentials
    q32 = q32 / q32.sum(-1, keepdim=True)  # float32 rows: off 1 by float32 rounding
    q = q32.double()
    assert float((q.sum(-1) - 1).abs().max()) > 1.5e-8  # beyond the float64 tolerance sqrt(eps64) at K = 5
    y = torch.zeros(4096, dtype=torch.long)
    assert torch.isfinite(BrierLoss().loss(q, y)).all()
    with pytest.raises(ValueError, match="simplex"):  # a genuinely float64 row that far off still fails
        off = q.clone()
        off[:, 0] += 1e-5 + 1e-12  # not float32-representable, and off by 1e-5 > 1.5e-8
        BrierLoss().loss(off, y)


def test_log_loss_cross_entropy_fast_path_matches_reference_values_and_gradients():
    g = torch.Generator().manual_seed(1)
    z = (3 * torch.randn(64, 10, generator=g)).requires_grad_(True)
    y = torch.randint(0, 10, (64,), generator=g)
    z_ref = z.detach().clone().requires_grad_(True)
    fast = ProperLossModule("log")(z, y)
    ref = ProperLossModule("log", fused=False)(z_ref, y)
    fast.backward()
    ref.backward()
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-6, atol=1e-7)
