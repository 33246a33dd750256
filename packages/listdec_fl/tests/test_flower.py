import logging

import pytest
import torch
from listdec_fl import AttackConfig, ListDecConfig, SimConfig
from listdec_fl.models import LogisticRegression

from .conftest import synthetic_federated

flwr = pytest.importorskip("flwr")

from listdec_fl.flower import (  # noqa: E402
    InProcessGrid,
    ListDecodable,
    make_client_app,
    make_evaluate_fn,
    record_from_flat,
    run_flower_simulation,
)

FAST = dict(local_steps=5, batch_size=8, lr=0.1)


def _setup(n=10, alpha=0.6, attack="signflip"):
    fed = synthetic_federated(n_clients=n, seed=3)
    model = LogisticRegression(fed.in_shape, fed.n_classes)
    byz = list(range(int(alpha * n)))
    cfg = ListDecConfig(alpha=alpha, **FAST)
    app = make_client_app(fed, model, byzantine=byz, attack=AttackConfig(name=attack), cfg=cfg)
    init = record_from_flat(model, model.init(1, torch.Generator().manual_seed(0))[0])
    return fed, model, app, init


@pytest.mark.parametrize("attack", ["signflip", pytest.param("ipm", marks=pytest.mark.slow)])
def test_strategy_on_local_grid(attack):
    """The Flower strategy with 10 nodes (6 malicious) on the in-process Grid: one trainer, every node votes."""
    logging.getLogger("flwr").setLevel(logging.WARNING)
    fed, model, app, init = _setup(attack=attack)
    strat = ListDecodable(alpha=0.6, min_available_nodes=10, seed=0)
    res = strat.start(grid=InProcessGrid(app, 10), initial_arrays=init, num_rounds=10,
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
    grid = InProcessGrid(app, 10)
    train = list(strat.configure_train(1, init, flwr.app.ConfigRecord(), grid))
    assert len(train) == 1 and train[0].content["config"]["model-index"] in (0, 1)
    strat.aggregate_train(1, grid.send_and_receive(train))
    evals = list(strat.configure_evaluate(1, init, flwr.app.ConfigRecord(), grid))
    assert len(evals) == 10 and evals[0].content["config"]["num-models"] == 3
    assert len(evals[0].content.array_records) == 3  # first round: every node gets all k + 1 candidates
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


class RecordingGrid(InProcessGrid):
    """Keeps every evaluate round's messages and replies for the checks below."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.rounds = []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        replies = list(super().send_and_receive(messages, timeout=timeout))
        if messages and messages[0].metadata.message_type == "evaluate":
            self.rounds.append((messages, replies))
        return replies


def _hard_setup(n=10, n_byz=6, seed=5):
    """Overlapping classes (accuracy well below 1) so candidates have clearly different losses."""
    fed = synthetic_federated(n_clients=n, per_client=60, in_shape=(1, 4, 4), n_classes=6, seed=seed, sep=1.2)
    model = LogisticRegression(fed.in_shape, fed.n_classes)
    cfg = ListDecConfig(alpha=0.6, local_steps=5, batch_size=8, lr=0.3)
    byz = list(range(n_byz))
    app = make_client_app(fed, model, byzantine=byz, attack=AttackConfig(name="signflip"), cfg=cfg)
    init = record_from_flat(model, model.init(1, torch.Generator().manual_seed(0))[0])
    return fed, model, app, init, set(byz)


def test_adversarial_votes_through_strategy():
    """6 of 10 nodes sign-flip and vote for the WORST candidate, through ListDecodable and the ClientApp.

    Every round: each node's reported losses equal its validation loss of the candidate with that id
    (computed here from the arrays), honest nodes vote argmin and malicious argmax, the strategy removes a
    least-voted candidate (tallied here from the replies: a mirrored vote -> candidate mapping fails), the
    honest favourite survives, and after the first round only the new candidate is sent.
    """
    import torch.nn.functional as F

    logging.getLogger("flwr").setLevel(logging.WARNING)
    fed, model, app, init, byz = _hard_setup()
    strat = ListDecodable(alpha=0.6, min_available_nodes=10, seed=1)
    grid = RecordingGrid(app, 10)
    pid = {nid: c.node_config["partition-id"] for nid, c in grid.contexts.items()}
    arrays = {}  # candidate id -> ArrayRecord, from what the strategy sent
    removed_seen, honest_fav_rounds = 0, 0
    for rnd in range(1, 16):
        train = list(strat.configure_train(rnd, init, flwr.app.ConfigRecord(), grid))
        strat.aggregate_train(rnd, grid.send_and_receive(train))
        evals = list(strat.configure_evaluate(rnd, init, flwr.app.ConfigRecord(), grid))
        ids = list(evals[0].content["config"]["candidate-ids"])
        assert ids == strat.ids and len(ids) == 3
        sent = {int(k.split("-")[1]) for k in evals[0].content.array_records}
        assert sent == (set(ids) if rnd == 1 else {ids[-1]})  # only the new candidate after round 1
        for msg in evals:
            for key, rec in msg.content.array_records.items():
                arrays[int(key.split("-")[1])] = rec
        replies = list(grid.send_and_receive(evals))
        before = list(strat.ids)
        out = strat.aggregate_evaluate(rnd, replies)
        votes = torch.zeros(3, dtype=torch.long)
        honest_votes = torch.zeros(3, dtype=torch.long)
        for msg, rep in zip(evals, replies):
            assert not rep.has_error()
            p = pid[msg.metadata.dst_node_id]
            m = rep.content["metrics"]
            _, _, vx, vy = fed.client(p)
            want = []
            for cid in ids:
                module = model.module()
                module.load_state_dict(arrays[cid].to_torch_state_dict())
                theta = model.flatten(module)
                with torch.no_grad():
                    want.append(float(F.cross_entropy(model.logits_shared(theta[None], vx)[0], vy)))
            assert list(m["losses"]) == pytest.approx(want, rel=1e-5)
            losses = torch.tensor(want)
            expect = int(losses.argmax()) if p in byz else int(losses.argmin())
            assert m["vote"] == expect
            votes[m["vote"]] += 1
            if p not in byz:
                honest_votes[m["vote"]] += 1
        assert out["votes"] == votes.tolist()
        removed = before[out["removed"]]
        assert out["removed-id"] == removed and removed not in strat.ids
        assert votes[before.index(removed)] == votes.min()  # a least-voted candidate goes
        fav = before[int(honest_votes.argmax())]
        if honest_votes.max() == 10 - len(byz):  # the honest nodes agree: their favourite must survive
            assert fav in strat.ids
            honest_fav_rounds += 1
        removed_seen += int(votes.min() < votes.max())
    # the data is hard enough that the vote is informative: the mapping matters in most rounds
    print("rounds with distinct vote counts", removed_seen, "unanimous honest rounds", honest_fav_rounds)
    assert removed_seen >= 10 and honest_fav_rounds >= 5


def test_client_cache_miss_is_an_error_and_resent():
    """A node that lost its cache answers with an error naming the ids; the strategy then resends all."""
    logging.getLogger("flwr").setLevel(logging.WARNING)
    fed, model, app, init = _setup()
    strat = ListDecodable(alpha=0.6, min_available_nodes=10)
    grid = InProcessGrid(app, 10)
    for rnd in (1, 2):
        strat.aggregate_train(rnd, grid.send_and_receive(strat.configure_train(rnd, init, flwr.app.ConfigRecord(), grid)))
        evals = list(strat.configure_evaluate(rnd, init, flwr.app.ConfigRecord(), grid))
        if rnd == 2:
            node = evals[0].metadata.dst_node_id
            grid.contexts[node].state = flwr.app.RecordDict()  # the node restarted
        replies = list(grid.send_and_receive(evals))
        strat.aggregate_evaluate(rnd, replies)
    assert replies[0].has_error() and "neither sent nor cached" in replies[0].error.reason
    assert sum(r.has_error() for r in replies) == 1
    strat.aggregate_train(3, grid.send_and_receive(strat.configure_train(3, init, flwr.app.ConfigRecord(), grid)))
    evals = list(strat.configure_evaluate(3, init, flwr.app.ConfigRecord(), grid))
    assert len(evals[0].content.array_records) == 3 and len(evals[1].content.array_records) == 1


def test_telemetry_off_by_default():
    import subprocess
    import sys

    code = ("import os; os.environ.pop('FLWR_TELEMETRY_ENABLED', None); import listdec_fl.flower; "
            "from flwr.supercore import telemetry; print(os.environ['FLWR_TELEMETRY_ENABLED'], "
            "telemetry.FLWR_TELEMETRY_ENABLED)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0"]


def test_flower_alpha_mismatch_raises():
    sim = SimConfig(dataset="digits", n_clients=10, alpha=0.8, attack=AttackConfig(name="signflip"), rounds=2)
    with pytest.raises(ValueError, match=r"ListDecConfig.alpha: expected the simulated SimConfig.alpha = 0.8"):
        run_flower_simulation(sim, ListDecConfig(alpha=0.6), data=synthetic_federated(n_clients=10))
