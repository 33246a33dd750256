import pytest
from listdec_fl.config import (
    AttackConfig,
    BaselineConfig,
    ListDecConfig,
    SimConfig,
    list_size_for,
    num_byzantine,
)


def test_defaults_match_official_scripts():
    c = ListDecConfig()
    assert (c.alpha, c.local_steps, c.batch_size, c.lr, c.momentum, c.valid_fraction) == (0.6, 25, 32, 0.01, 0.9, 0.2)
    assert c.byzantine_vote == "worst" and c.k == 2  # int(1 // (1 - 0.6)) = 2
    b = BaselineConfig()
    assert (b.local_steps, b.batch_size, b.lr, b.momentum, b.geomed_iters, b.norm_bound) == (25, 32, 0.01, 0.0, 1, 0.215771)
    a = AttackConfig()
    assert (a.ipm_epsilon, a.alie_z) == (1.1, 20.0)
    s = SimConfig()
    assert (s.n_clients, s.rounds, s.eval_every, s.dirichlet_alpha) == (35, 1500, 50, 0.1)


@pytest.mark.parametrize("alpha,k", [(0.0, 1), (0.2, 1), (0.4, 1), (0.5, 2), (0.6, 2), (2 / 3, 3), (0.7, 3),
                                     (0.75, 4), (0.8, 5), (0.9, 10)])
def test_list_size(alpha, k):
    assert list_size_for(alpha) == k
    assert ListDecConfig(alpha=alpha).k == k


def test_list_size_override():
    assert ListDecConfig(alpha=0.6, list_size=4).k == 4


def test_num_byzantine():
    assert num_byzantine(0.6, 35) == 21 and num_byzantine(0.7, 30) == 21 and num_byzantine(0.2, 20) == 4


@pytest.mark.parametrize("alpha", [1.0, 1.5, -0.1])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="0 <= alpha < 1"):
        ListDecConfig(alpha=alpha)
    with pytest.raises(ValueError, match="0 <= alpha < 1"):
        list_size_for(alpha)
    with pytest.raises(ValueError, match="alpha"):
        SimConfig(alpha=alpha)


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_bad_list_size(k):
    with pytest.raises(ValueError, match="list_size"):
        ListDecConfig(list_size=k)


def test_other_bad_values():
    with pytest.raises(ValueError, match="byzantine_vote"):
        ListDecConfig(byzantine_vote="best")
    with pytest.raises(ValueError, match="attack name"):
        AttackConfig(name="backdoor")
    with pytest.raises(ValueError, match="aggregator"):
        BaselineConfig(aggregator="bulyan")
    with pytest.raises(ValueError, match="n_clients"):
        SimConfig(n_clients=1)
    with pytest.raises(ValueError, match="too few clients"):
        SimConfig(n_clients=4, alpha=0.2)


def test_round_trip():
    s = SimConfig(dataset="mnist5k", alpha=0.7, attack=AttackConfig(name="alie", alie_z=None), rounds=10)
    assert SimConfig.from_dict(s.to_dict()) == s
    c = ListDecConfig(alpha=0.8, byzantine_vote="random")
    assert ListDecConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown key"):
        ListDecConfig.from_dict({"alpha": 0.5, "beta": 1})
