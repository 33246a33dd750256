import pytest
import torch
from listdec_fl import AttackConfig, BaselineConfig, ListDecConfig, SimConfig, run_baselines, run_listdec
from listdec_fl.simulator import byzantine_mask, client_valid_losses, run_listdec_many

from .conftest import synthetic_federated


def sim_for(attack, alpha, rounds=30, **kw):
    return SimConfig(dataset="synthetic", n_clients=10, alpha=alpha, attack=AttackConfig(name=attack, **kw),
                     rounds=rounds, eval_every=10)


FAST = dict(local_steps=5, batch_size=8, lr=0.1)


def test_byzantine_mask_nested_and_seeded():
    a, b = byzantine_mask(20, 4, 0), byzantine_mask(20, 12, 0)
    assert int(a.sum()) == 4 and int(b.sum()) == 12 and bool((a <= b).all())
    assert torch.equal(byzantine_mask(20, 4, 0), a) and not torch.equal(byzantine_mask(20, 4, 1), a)


def test_valid_losses_match_per_client_loop(fed):
    from listdec_fl.models import LogisticRegression

    m = LogisticRegression(fed.in_shape, fed.n_classes)
    p = m.init(3, torch.Generator().manual_seed(0))
    L = client_valid_losses(m, p, fed)
    for i in range(fed.n_clients):
        _, _, vx, vy = fed.client(i)
        for j in range(3):
            ref = torch.nn.functional.cross_entropy(m.module(p[j])(vx), vy)
            assert float(L[i, j]) == pytest.approx(float(ref.detach()), rel=1e-5)


def test_seeded_runs_reproduce_exactly(fed):
    sim, cfg = sim_for("gauss", 0.6, rounds=12), ListDecConfig(alpha=0.6, **FAST)
    a, b = run_listdec(sim, cfg, fed), run_listdec(sim, cfg, fed)
    assert a.accuracy == b.accuracy and torch.equal(a.models, b.models)
    runs = [(sim, BaselineConfig(aggregator="median", **FAST))]
    x, y = run_baselines(runs, fed), run_baselines(runs, fed)
    assert x[0].accuracy == y[0].accuracy and torch.equal(x[0].models, y[0].models)
    c = run_listdec(SimConfig(**{**sim.to_dict(), "seed": 1}), cfg, fed)
    assert not torch.equal(a.models, c.models)


def test_batched_listdec_equals_single_runs(fed):
    runs = [(sim_for(atk, al, rounds=8), ListDecConfig(alpha=al, **FAST))
            for atk, al in (("signflip", 0.6), ("ipm", 0.8), ("gauss", 0.4), ("labelflip", 0.7))]
    many = run_listdec_many(runs, fed)
    for (s, c), r in zip(runs, many):
        one = run_listdec(s, c, fed)
        assert [h["chosen"] for h in one.extra["history"]] == [h["chosen"] for h in r.extra["history"]]
        torch.testing.assert_close(one.models, r.models, atol=1e-4, rtol=1e-4)


def test_batched_baselines_equal_single_runs(fed):
    runs = [(sim_for(atk, al, rounds=6), BaselineConfig(aggregator=ag, **FAST))
            for atk, al, ag in (("signflip", 0.6, "fedavg"), ("alie", 0.2, "median"), ("ipm", 0.4, "krum"),
                                ("omniscient", 0.6, "trimmed_mean"), ("labelflip", 0.2, "geomed"))]
    many = run_baselines(runs, fed)
    for run, r in zip(runs, many):
        torch.testing.assert_close(run_baselines([run], fed)[0].models, r.models, atol=1e-5, rtol=1e-5)


def test_claim_lidfl_survives_malicious_majority():
    """alpha = 0.6 sign flipping: FedAvg collapses, LiD-FL's best listed model stays near clean accuracy."""
    fed = synthetic_federated(seed=3, per_client=60)
    cfg = ListDecConfig(alpha=0.6, **FAST)
    clean = run_baselines([(sim_for("none", 0.0, rounds=25), BaselineConfig(aggregator="fedavg", **FAST))], fed)[0]
    lid = run_listdec(sim_for("signflip", 0.6, rounds=25), cfg, fed)
    avg = run_baselines([(sim_for("signflip", 0.6, rounds=25), BaselineConfig(aggregator="fedavg", **FAST))], fed)[0]
    assert clean.final_accuracy > 0.8
    assert lid.final_accuracy > clean.final_accuracy - 0.1
    assert avg.final_accuracy < 0.5


def test_listdec_records(fed):
    r = run_listdec(sim_for("omniscient", 0.7, rounds=10), ListDecConfig(alpha=0.7, **FAST), fed)
    assert r.rounds == [10] and r.models.shape[0] == 3 and len(r.extra["list_accuracy"][0]) == 3
    assert 0 <= r.extra["new_kept_rate"] <= 1 and r.to_dict()["final_accuracy"] == r.final_accuracy


def test_bad_input(fed):
    with pytest.raises(ValueError, match="expected 12 clients"):
        run_listdec(SimConfig(n_clients=12, rounds=1), ListDecConfig(), fed)
    with pytest.raises(ValueError, match="share SimConfig.rounds"):
        run_baselines([(sim_for("none", 0.2, rounds=2), BaselineConfig()), (sim_for("none", 0.2, rounds=3), BaselineConfig())], fed)
    with pytest.raises(ValueError, match="at least one"):
        run_listdec_many([], fed)
    with pytest.raises(ValueError, match="0 < p < 1"):
        run_listdec(sim_for("alie", 0.6, rounds=1, alie_z=None), ListDecConfig(**FAST), fed)


def test_alpha_mismatch_is_an_error(fed):
    """Issue 20: SimConfig.alpha 0.8 with a list sized for 0.6 (k = 2 < 5) used to run to chance accuracy."""
    from listdec_fl import AttackConfig, ListDecConfig, SimConfig, run_listdec

    sim = SimConfig(n_clients=10, alpha=0.8, attack=AttackConfig(name="signflip"), rounds=1)
    with pytest.raises(ValueError, match=r"ListDecConfig.alpha: expected the simulated SimConfig.alpha = 0.8 "
                                         r"\(list size k = 5\), given 0.6 \(k = 2\)"):
        run_listdec(sim, ListDecConfig(alpha=0.6), fed)
