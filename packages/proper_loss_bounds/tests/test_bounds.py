import math

import numpy as np
import pytest
import torch
from proper_loss_bounds import (
    SavageLoss,
    check_half_order,
    check_nonvacuous_iff_strict,
    check_properness,
    get_loss,
    loglog_slope,
    regret_bound,
    strong_properness_constant,
)
from proper_loss_bounds.functional import lp_norm

D = torch.float64
INF = math.inf


@pytest.mark.parametrize("name, s, k", [
    ("log", 1, 3), ("log", 2, 3), ("log", INF, 4),
    ("brier", 1, 3), ("brier", 1, 4), ("brier", 2, 3), ("brier", INF, 4),
    ("spherical", 2, 3), ("spherical", 2, 4), ("spherical", 1, 4), ("spherical", INF, 3),
    ("binary-logistic", 1, 2), ("binary-exponential", 2, 2), ("binary-exponential", INF, 2),
    ("tsallis-3", 2, 2), ("tsallis-4", 1, 2), ("tsallis-1.5", 4 / 3, 3),
])
def test_closed_forms_agree_with_numeric_search(name, s, k):
    loss = get_loss(name)
    closed = strong_properness_constant(loss, s=s, num_classes=k, method="closed")
    numeric = strong_properness_constant(loss, s=s, num_classes=k, method="numeric", num_points=256,
                                         refine_rounds=3 if s in (1, 2, INF) else 2)
    assert numeric >= closed * (1 - 1e-6)  # the numeric value is attained: an upper bound on the inf
    assert numeric == pytest.approx(closed, rel=2e-3)


@pytest.mark.parametrize("s", [1, 2, INF])
def test_tsallis_semi_closed_form_agrees_with_numeric(s):
    loss = get_loss("tsallis-1.5")
    semi = strong_properness_constant(loss, s=s)
    numeric = strong_properness_constant(loss, s=s, method="numeric", num_points=256)
    assert numeric == pytest.approx(semi, rel=2e-3)


@pytest.mark.parametrize("name", ["tsallis-3", "quartic", "zero-one", "pseudo-spherical-3"])
def test_not_strongly_proper_constants_vanish(name):
    assert strong_properness_constant(name, s=2, method="numeric", num_points=256) < 1e-6


def test_closed_method_raises_without_closed_form():
    with pytest.raises(ValueError, match="no closed form"):
        strong_properness_constant("pseudo-spherical-3", method="closed")
    with pytest.raises(ValueError, match="method"):
        strong_properness_constant("log", method="guess")
    with pytest.raises(ValueError, match="K=2"):
        strong_properness_constant("binary-logistic", num_classes=3)


@pytest.mark.parametrize("name", ["log", "brier", "spherical", "tsallis-1.5", "tsallis-0.5", "binary-exponential"])
@pytest.mark.parametrize("s", [1, 2, INF])
def test_strong_properness_bound_holds_on_random_pairs(name, s):
    loss = get_loss(name)
    k = loss.num_classes or 3
    lam = strong_properness_constant(loss, s=s, num_classes=k)
    g = torch.Generator().manual_seed(0)
    x = torch.empty(2, 4000, k, dtype=D).exponential_(generator=g) ** 3
    x = x / x.sum(-1, keepdim=True)
    q, p = x[0].clamp_min(1e-12), x[1]
    q = q / q.sum(-1, keepdim=True)
    lhs = lp_norm(p - q, s) ** 2
    rhs = 2 * loss.regret(q, p) / lam
    assert bool((lhs <= rhs * (1 + 1e-9) + 1e-15).all())


def test_regret_bound_brier_is_sqrt_r_and_pairs_attain_it():
    r = np.array([1e-6, 1e-4, 1e-2])
    b = regret_bound("brier", r, num_candidates=256, refine_rounds=1)
    np.testing.assert_allclose(b.psi, np.sqrt(r), rtol=1e-6)
    loss = get_loss("brier")
    assert np.all(loss.regret(b.q, b.p) <= r * (1 + 1e-9))
    np.testing.assert_allclose(np.linalg.norm(b.q - b.p, axis=-1), b.psi, rtol=1e-12)


def test_regret_bound_log_matches_strong_properness_constant():
    r = np.logspace(-7, -5, 3)
    for s in (1, 2):
        lam = strong_properness_constant("log", s=s)
        b = regret_bound("log", r, s=s, num_candidates=512, refine_rounds=4)
        ratio = b.psi / np.sqrt(2 * r / lam)
        assert np.all(ratio <= 1 + 1e-6) and np.all(ratio >= 0.97), ratio
        assert b.slope() == pytest.approx(0.5, abs=0.01)


def test_regret_bound_slow_and_vacuous_losses():
    r = np.logspace(-7, -4, 4)
    slow = regret_bound("tsallis-3", r, num_candidates=512, refine_rounds=4)
    assert slow.slope() == pytest.approx(1 / 3, abs=0.03)
    flat = regret_bound("zero-one", r, num_candidates=256, refine_rounds=0)
    assert np.all(flat.psi > 0.5) and abs(flat.slope()) < 1e-6


def test_regret_bound_bad_input():
    with pytest.raises(ValueError, match="positive"):
        regret_bound("log", [0.0, 1e-3])
    with pytest.raises(ValueError, match=r"\[1, inf\]"):
        regret_bound("log", [1e-3], s=0.5)


def test_check_properness_zoo_and_non_concave_savage():
    for name in ("log", "spherical", "tsallis-3"):
        c = check_properness(name, num_p=32, num_q=128, steps=60)
        assert c.proper and c.strictly_proper, (name, c)
    z = check_properness("zero-one", num_p=32, num_q=128)
    assert z.proper and not z.strictly_proper
    bad = SavageLoss(lambda p: (p**2).sum(-1), name="convex-H")  # convex "Bayes risk": not proper
    c = check_properness(bad, num_p=32, num_q=128, steps=30)
    assert not c.proper and c.max_violation > 1e-3


def test_theorem_checks():
    a = check_nonvacuous_iff_strict("log", num_candidates=256)
    assert a.holds and a.details["nonvacuous"] and a.details["strictly_proper"]
    z = check_nonvacuous_iff_strict("zero-one", num_candidates=256)
    assert z.holds and not z.details["nonvacuous"] and not z.details["strictly_proper"]
    h = check_half_order("quartic", num_candidates=128)
    assert h.holds and h.details["ratio_min"] >= 0.9
    assert h.details["point"] != pytest.approx([1 / 3] * 3)  # flat at the centre: certified elsewhere


def test_loglog_slope():
    x = np.logspace(-6, -1, 6)
    assert loglog_slope(x, 3 * x**0.25) == pytest.approx(0.25)
    assert loglog_slope(x, x**0.5, r_max=1e-3) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 2"):
        loglog_slope(x, np.zeros_like(x))
