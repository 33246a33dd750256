"""Property tests: random non-finite values and odd shapes into the public functions give an error with a
message, or a finite result."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from listdec_fl import AttackConfig, BaselineConfig, ListDecConfig, SimConfig, list_size_for

floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5))


@settings(max_examples=60, deadline=None)
@given(alpha=floats, lr=floats, momentum=floats)
def test_configs_reject_or_accept_cleanly(alpha, lr, momentum):
    try:
        c = ListDecConfig(alpha=alpha, lr=lr, momentum=momentum)
    except ValueError as e:
        assert str(e) and "expected" in str(e)
    else:
        assert 0 <= c.alpha < 1 and math.isfinite(c.lr) and c.lr > 0 and c.k >= 1
    for fn in (lambda: list_size_for(alpha), lambda: SimConfig(alpha=alpha, n_clients=20),
               lambda: BaselineConfig(lr=lr), lambda: AttackConfig(ipm_epsilon=lr)):
        try:
            fn()
        except ValueError as e:
            assert "expected" in str(e)


@settings(max_examples=40, deadline=None)
@given(sim_alpha=st.sampled_from([0.0, 0.2, 0.5, 0.6, 0.7, 0.8]), cfg_alpha=st.sampled_from([0.0, 0.2, 0.5, 0.6, 0.7, 0.8]))
def test_alpha_mismatch_always_detected(sim_alpha, cfg_alpha):
    from listdec_fl.config import check_alpha_match

    cfg = ListDecConfig(alpha=cfg_alpha)
    if sim_alpha == cfg_alpha:
        check_alpha_match(sim_alpha, cfg)
    else:
        with pytest.raises(ValueError, match="ListDecConfig.alpha: expected the simulated SimConfig.alpha"):
            check_alpha_match(sim_alpha, cfg)
    check_alpha_match(sim_alpha, ListDecConfig(alpha=cfg_alpha, list_size=3))  # an explicit k is the user's call
