import logging

import pytest
import torch
from listdec_fl import AttackConfig, ListDecConfig, SimConfig
from listdec_fl.models import LogisticRegression

from .conftest import synthetic_federated

flwr = pytest.importorskip("flwr")

from listdec_fl.flower import (  # noqa: E402
    ListDecodable,
    LocalGrid,
    _record_from_flat,
    make_client_app,
    make_evaluate_fn,
    run_flower_simulation,
)

FAST = dict(local_steps=5, batch_size=8, lr=0.1)


def _setup(n=10, alpha=0.6, attack="signflip"):
    fed = synthetic_federated(n_clients=n, seed=3)
    model = LogisticRegression(fed.in_shape, fed.n_classes)
    byz = list(range(int(alpha * n)))
    cfg = ListDecConfig(alpha=alpha, **FAST)
    app = make_client_app(fed, model, byzantine=byz, attack=AttackConfig(name=attack), cfg=cfg)
    init = _record_from_flat(model, model.init(1, torch.Generator().manual_seed(0))[0])
    return fed, model, app, init


@pytest.mark.parametrize("attack", ["signflip", pytest.param("ipm", marks=pytest.mark.slow)])
def test_strategy_on_local_grid(attack):
    """The Flower strategy with 10 nodes (6 malicious) on an in-process Grid: one trainer, every node votes."""
    logging.getLogger("flwr").setLevel(logging.WARNING)
    fed, model, app, init = _setup(attack=attack)
    strat = ListDecodable(alpha=0.6, min_available_nodes=10, seed=0)
    res = strat.start(grid=LocalGrid(app, 10), initial_arrays=init, num_rounds=10,
                      evaluate_fn=make_evaluate_fn(fed, model))
    assert len(strat.models) == 2 and len(strat.state.history) == 10
    last = res.evaluate_metrics_clientapp[10]
    assert last["num-voters"] == 10 and sum(last["votes"]) == 10 and last["list-size"] == 2
    assert res.evaluate_metrics_serverapp[10]["best-accuracy"] > 0.8
    assert res.evaluate_metrics_serverapp[0]["best-accuracy"] < 0.6
    assert set(res.arrays.keys()) == set(init.keys())


def test_strategy_discards_invalid_votes_and_errors():
    from flwr.app import Message, MetricRecord, RecordDict

    logging.getLogger("flwr").setLevel(logging.WARNING)
    fed, model, app, init = _setup()
    strat = ListDecodable(list_size=2, min_available_nodes=1)
    grid = LocalGrid(app, 10)
    train = list(strat.configure_train(1, init, flwr.app.ConfigRecord(), grid))
    assert len(train) == 1 and train[0].content["config"]["model-index"] in (0, 1)
    strat.aggregate_train(1, grid.send_and_receive(train))
    evals = list(strat.configure_evaluate(1, init, flwr.app.ConfigRecord(), grid))
    assert len(evals) == 10 and evals[0].content["config"]["num-models"] == 3
    replies = list(grid.send_and_receive(evals))
    bogus = Message(RecordDict({"m": MetricRecord({"vote": 7})}), reply_to=evals[0])
    out = strat.aggregate_evaluate(1, replies[:4] + [bogus])
    assert out["num-voters"] == 4 and len(strat.models) == 2


def test_strategy_bad_input():
    with pytest.raises(ValueError, match="0 <= alpha < 1"):
        ListDecodable(alpha=1.0)
    with pytest.raises(ValueError, match="list_size"):
        ListDecodable(list_size=0)
    fed, model, _, _ = _setup()
    with pytest.raises(ValueError, match="partition ids"):
        make_client_app(fed, model, byzantine=[12])


@pytest.mark.slow
def test_flower_simulation_engine_ray():
    """Flower's simulation engine (Ray backend) with 10 virtual nodes, 6 of them malicious.

    Only ~1 round in 5 has an honest node train the good listed model (0.4 x 1/k), hence 25 rounds.
    """
    sim = SimConfig(dataset="digits", n_clients=10, alpha=0.6, attack=AttackConfig(name="signflip"), rounds=25)
    res, strat = run_flower_simulation(sim, ListDecConfig(alpha=0.6, lr=0.05))
    assert len(strat.models) == 2 and len(strat.state.history) == 25
    assert all(res.evaluate_metrics_clientapp[r]["num-voters"] == 10 for r in range(1, 26))
    best = [res.evaluate_metrics_serverapp[r]["best-accuracy"] for r in range(26)]
    assert all(b >= best[0] for b in best)  # the honest favourite is never lost
    assert best[-1] > 0.8
