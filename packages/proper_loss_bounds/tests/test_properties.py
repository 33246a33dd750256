"""Property test (issue 20): random shapes and non-finite values into the public functions give either an
error with a message, or a finite result."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from proper_loss_bounds import BrierLoss, LogLoss, ProperLossModule, SphericalLoss, TsallisLoss

floats = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0])
LOSSES = [LogLoss(), BrierLoss(), SphericalLoss(), TsallisLoss(1.5)]


def _finite_or_message(fn):
    try:
        out = fn()
    except (ValueError, TypeError, IndexError) as e:
        assert str(e).strip(), "an error without a message"
        return
    assert torch.isfinite(torch.as_tensor(out)).all(), f"non-finite result {out}"


@settings(max_examples=40, deadline=None)
@given(q=st.tuples(st.integers(0, 5), st.integers(0, 5)).flatmap(lambda s: arrays(np.float64, s, elements=floats)),
       loss=st.sampled_from(LOSSES), data=st.data())
def test_loss_regret_and_bayes_risk(q, loss, data):
    qt = torch.from_numpy(q)
    y = torch.from_numpy(data.draw(arrays(np.int64, q.shape[:1], elements=st.integers(-2, 6))))

    def run():
        if isinstance(loss, LogLoss) and qt.numel() and bool((qt == 0).any()):
            return torch.zeros(())  # log loss at q_y = 0 is +inf by definition: not a bad-input case
        return torch.stack([loss.loss(qt, y).sum(), loss.bayes_risk(qt).sum(), loss.regret(qt, qt).sum()])

    _finite_or_message(run)


@settings(max_examples=30, deadline=None)
@given(z=st.tuples(st.integers(0, 4), st.integers(0, 5)).flatmap(lambda s: arrays(np.float32, s, elements=st.floats(
    width=32, allow_nan=True, allow_infinity=True))), name=st.sampled_from(["log", "brier", "spherical"]))
def test_module_forward(z, name):
    zt = torch.from_numpy(z)
    y = torch.zeros(z.shape[0], dtype=torch.long)
    _finite_or_message(lambda: ProperLossModule(name)(zt, y))
