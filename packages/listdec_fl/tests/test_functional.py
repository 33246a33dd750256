import math

import pytest
import torch
from listdec_fl.config import list_size_for, num_byzantine
from listdec_fl.functional import (
    alie_z,
    byzantine_update,
    cast_votes,
    gauss_gradient,
    local_sgd,
    local_sgd_reference,
    removal_index,
    sample_batches,
    survival_margin,
    tally,
)
from listdec_fl.listdec import ModelList
from listdec_fl.models import LogisticRegression


def test_votes_worst():
    losses = torch.tensor([[1.0, 2.0, 0.5], [3.0, 0.1, 0.2], [0.3, 0.2, 0.9]])
    byz = torch.tensor([False, True, True])
    assert cast_votes(losses, byz, "worst").tolist() == [2, 0, 2]


def test_votes_random_never_best():
    g = torch.Generator().manual_seed(0)
    losses = torch.rand(500, 4, generator=g)
    v = cast_votes(losses, torch.ones(500, dtype=torch.bool), "random", g)
    assert (v != losses.argmin(1)).all()
    assert set(v.tolist()) == {0, 1, 2, 3}


def test_votes_bad_input():
    with pytest.raises(ValueError, match="byzantine"):
        cast_votes(torch.zeros(3, 2), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="mode"):
        cast_votes(torch.zeros(3, 2), torch.zeros(3, dtype=torch.bool), "best")
    with pytest.raises(ValueError, match="indices"):
        tally(torch.tensor([0, 3]), 3)


def test_removal_tiebreak_follows_official_code():
    # unique minimum
    assert removal_index([3, 1, 2], [5, 0, 0]) == 1
    # tie: the most-selected goes
    assert removal_index([1, 1, 4], [2, 7, 0]) == 1
    # tie in selections too: the first (oldest) of them (np.argmax semantics)
    assert removal_index([0, 2, 0, 0], [3, 1, 3, 0]) == 0
    # all tied with zero selections: the first
    assert removal_index([2, 2, 2], [0, 0, 0]) == 0


def _random_round(n, b, k, g):
    """One adversarial vote: honest clients agree on a preferred model p, malicious votes arbitrary."""
    m = k + 1
    p = int(torch.randint(0, m, (1,), generator=g))
    votes = torch.full((n,), p)
    byz = torch.randperm(n, generator=g)[:b]
    # adversary: random or "spread evenly over the others" (the strongest attempt to tie p)
    if torch.rand(1, generator=g) < 0.5:
        votes[byz] = torch.randint(0, m, (b,), generator=g)
    else:
        others = [j for j in range(m) if j != p]
        votes[byz] = torch.tensor([others[i % len(others)] for i in range(b)])
    sel = torch.randint(0, 5, (m,), generator=g).tolist()
    return p, votes, sel


@pytest.mark.parametrize("alpha", [0.2, 0.4, 0.5, 0.6, 2 / 3, 0.7, 0.75, 0.8, 0.9])
def test_survival_invariant(alpha):
    """With k = floor(1/(1-alpha)), the model every honest client prefers is never removed."""
    g = torch.Generator().manual_seed(int(alpha * 1000))
    k = list_size_for(alpha)
    for n in (10, 20, 30, 35, 60):
        b = num_byzantine(alpha, n)
        assert survival_margin(n, b, k) > 0
        for _ in range(300):
            p, votes, sel = _random_round(n, b, k, g)
            assert removal_index(tally(votes, k + 1).tolist(), sel) != p


def test_survival_needs_k():
    """The invariant is tight: with one model fewer, the adversary can tie the honest model and win the tie-break."""
    n, alpha = 30, 2 / 3
    b, k = num_byzantine(alpha, n), list_size_for(alpha) - 1
    h = n - b
    assert survival_margin(n, b, k) <= 0
    votes = torch.tensor([0] * h + [j for j in (1, 2) for _ in range(h)])  # every candidate gets h votes
    assert removal_index(tally(votes, k + 1).tolist(), [9, 0, 0]) == 0  # the honest model 0 (most selected) goes


def test_modellist_invariant_over_rounds():
    g = torch.Generator().manual_seed(1)
    n, alpha = 20, 0.8
    b, k = num_byzantine(alpha, n), list_size_for(alpha)
    ml = ModelList.replicate("init", k)
    good = "good"
    ml.models[0] = good
    for _ in range(200):
        i = ml.choose(g)
        ml.append(f"new{len(ml.history)}", None)
        p = ml.models.index(good)
        votes = torch.full((n,), p)
        votes[:b] = torch.randint(0, k + 1, (b,), generator=g)
        ml.prune(votes)
        assert good in ml.models and len(ml) == k
        del i


def test_alie_z_formula():
    # n=35, m=7 -> s = 11, p = 17/28
    z = alie_z(35, 7)
    assert z == pytest.approx(math.sqrt(2) * torch.erfinv(torch.tensor(2 * 17 / 28 - 1.0)).item(), rel=1e-6)
    assert 0.2 < z < 0.35
    with pytest.raises(ValueError, match="0 < p < 1"):
        alie_z(35, 21)


def test_byzantine_updates_closed_form():
    h = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    mean, std = torch.tensor([2.0, 4.0]), torch.tensor([1.0, 2.0])
    n, b = 5, 3
    torch.testing.assert_close(byzantine_update("ipm", h, b, n, ipm_epsilon=1.1), -1.1 * mean * 2 / 3)
    torch.testing.assert_close(byzantine_update("alie", h, b, n, alie_z=2.0), mean - 2.0 * std)
    torch.testing.assert_close(byzantine_update("omniscient", h, b, n), -mean)
    # single-model omniscient: the plain mean of all n updates equals -mean(honest)
    bad = byzantine_update("omniscient", h, b, n, single_model=True)
    torch.testing.assert_close((h.sum(0) + b * bad) / n, -mean)
    # masked form equals the unmasked one
    full = torch.cat([h, torch.randn(3, 2)])
    mask = torch.tensor([True, True, False, False, False])
    torch.testing.assert_close(byzantine_update("alie", full, b, n, alie_z=2.0, mask=mask), mean - 2.0 * std)
    with pytest.raises(ValueError, match="n_byzantine"):
        byzantine_update("ipm", h, 0, n)


def test_gauss_gradient_per_segment_std():
    g = torch.Generator().manual_seed(0)
    grad = torch.cat([torch.randn(3, 5000) * 10, torch.randn(3, 5000) * 0.1], dim=1)
    out = gauss_gradient(grad, [(0, 5000), (5000, 10000)], g)
    assert out[:, :5000].std() == pytest.approx(10, rel=0.05)
    assert out[:, 5000:].std() == pytest.approx(0.1, rel=0.05)


def test_sample_batches():
    idx = sample_batches(torch.tensor([1, 5, 40]), 7, 32, torch.Generator().manual_seed(0))
    assert idx.shape == (7, 3, 32)
    assert (idx[:, 0] == 0).all() and idx[:, 1].max() <= 4 and idx[:, 2].max() <= 39 and idx.min() >= 0
    with pytest.raises(ValueError, match=">= 1 training sample"):
        sample_batches(torch.tensor([3, 0]), 1, 2, None)


def test_local_sgd_matches_autograd_reference():
    """The vectorised heavy-ball SGD (closed-form logreg gradient) equals per-client autograd + CustomSGD."""
    g = torch.Generator().manual_seed(0)
    model = LogisticRegression((1, 4, 4), 5)
    R, steps, B = 3, 6, 8
    theta = model.init(R, g)
    vel = torch.randn(R, model.dim, generator=g) * 0.1
    batches = [(torch.randn(R, B, 1, 4, 4, generator=g), torch.randint(0, 5, (R, B), generator=g)) for _ in range(steps)]
    th1, v1, loss = local_sgd(model.loss_and_grad, theta, vel, batches, lr=0.05, momentum=0.9)
    for r in range(R):
        mod = model.module(theta[r])
        buf = [b.clone() for b in model.unflatten(vel[r]).values()]
        buf, ref_loss = local_sgd_reference(mod, buf, [(x[r], y[r]) for x, y in batches], lr=0.05, momentum=0.9)
        torch.testing.assert_close(th1[r], model.flatten(mod), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v1[r], torch.cat([b.reshape(-1) for b in buf]), atol=1e-5, rtol=1e-5)
        assert float(loss[r]) == pytest.approx(ref_loss, rel=1e-5)
