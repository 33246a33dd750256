"""Property tests: random non-finite values and shapes reach the public API and come back as an error with a
message, or as a finite result."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phinet import ModelConfig, TrainConfig, build_model
from phinet import functional as PF

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
odd = st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e300, 0.5, 2.0])


def _ok_or_message(fn):
    try:
        out = fn()
    except (ValueError, TypeError) as e:
        assert str(e), "errors must carry a message"
        return None
    return out


@SETTINGS
@given(beta=odd, lam=odd)
def test_model_config_floats(beta, lam):
    cfg = _ok_or_message(lambda: ModelConfig.small("xphinet", beta=beta, sim2_weight=lam))
    if cfg is not None:
        assert 0 <= cfg.beta <= 1 and math.isfinite(cfg.sim2_weight) and cfg.sim2_weight >= 0


@SETTINGS
@given(lr=odd, wd=odd, mom=odd, temp=odd)
def test_train_config_floats(lr, wd, mom, temp):
    cfg = _ok_or_message(lambda: TrainConfig(base_lr=lr, weight_decay=wd, momentum=mom, knn_temperature=temp))
    if cfg is not None:
        assert all(math.isfinite(v) for v in (cfg.base_lr, cfg.weight_decay, cfg.momentum, cfg.knn_temperature))


@SETTINGS
@given(b=st.integers(0, 5), d=st.integers(1, 6), poison=st.sampled_from([None, float("nan"), float("inf")]))
def test_losses_and_gauges(b, d, poison):
    z = torch.randn(b, d)
    if poison is not None and z.numel():
        z[0, 0] = poison

    # the gauges validate (they run once per evaluation); the losses propagate NaN like F.cross_entropy (no
    # host sync per step) and the Trainer stops on a non-finite loss with a message
    out = _ok_or_message(lambda: (PF.effective_rank(z), PF.collapse_std(z)))
    if out is not None:
        assert all(bool(torch.isfinite(t).all()) for t in out)
    if poison is None and b >= 1:
        assert torch.isfinite(PF.simsiam_loss(z, z, z, z))


@SETTINGS
@given(shape=st.sampled_from([(4, 1, 8, 8), (4, 1, 7, 8), (4, 3, 8, 8), (4, 8, 8), (1, 1, 8, 8)]))
def test_model_forward_shapes(shape):
    m = build_model(ModelConfig.small("phinet", image_size=8, cnn_width=4, proj_dim=8, proj_hidden=8, pred_hidden=4))
    x = torch.rand(shape)
    out = _ok_or_message(lambda: m(x, x, x))
    if out is not None:
        assert torch.isfinite(out.loss)


def test_effective_rank_values():
    torch.manual_seed(0)
    assert PF.effective_rank(torch.randn(4000, 8)).item() == pytest.approx(8, rel=0.05)
    assert PF.effective_rank(torch.randn(100, 1) * torch.ones(1, 8)).item() == pytest.approx(1, abs=1e-3)
    assert PF.effective_rank(torch.ones(10, 8)).item() == 0.0
