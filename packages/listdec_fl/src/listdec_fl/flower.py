"""LiD-FL on Flower's message-based strategy API (``flwr.serverapp.strategy.Strategy``, flwr >= 1.21).

``ListDecodable`` keeps the list of models inside the strategy and maps one LiD-FL round onto Flower's
round structure:

* ``configure_train``: pick a listed model uniformly at random and send it, with its momentum buffer, to
  ONE uniformly sampled node;
* ``aggregate_train``: the node's reply (new weights and momentum) joins the list as the (k+1)-th model;
* ``configure_evaluate``: every candidate has an id; the config lists the k+1 ``"candidate-ids"`` and the
  message carries only the candidates a node has not scored yet (``"model-<id>"``): all k+1 in the first
  round, afterwards only the new one. Listed models never change, so each node caches its validation loss
  of every candidate (``context.state``) and scores just the newcomer;
* ``aggregate_evaluate``: each node replies with its vote (``"vote"``, an index into ``"candidate-ids"``;
  ``"losses"`` in the same order for logging); the least-voted candidate is removed (ties: the most
  selected, then the oldest). A node that lost its cache replies an error naming the missing ids and is
  sent everything again next round.

Telemetry: importing this module sets ``FLWR_TELEMETRY_ENABLED=0`` unless it is already set, so nothing is
posted to Flower's servers (flwr reads the variable when it is first imported).

It runs unchanged in Flower's simulation engine (:func:`run_flower_simulation`) and in deployments
(``flwr run``): the ClientApp only has to answer the two message types, see :func:`make_client_app`.

Example:
    >>> from listdec_fl import SimConfig, ListDecConfig, AttackConfig
    >>> from listdec_fl.flower import run_flower_simulation
    >>> sim = SimConfig(dataset="digits", n_clients=10, alpha=0.6, attack=AttackConfig(name="signflip"), rounds=25)
    >>> result, strategy = run_flower_simulation(sim, ListDecConfig(alpha=0.6))  # doctest: +SKIP
    >>> result.evaluate_metrics_serverapp[25]["best-accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import os

# Flower posts usage events to its servers unless FLWR_TELEMETRY_ENABLED=0, read once when flwr is first
# imported: keep it off unless the user opted in (set FLWR_TELEMETRY_ENABLED=1 before importing us).
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import logging  # noqa: E402
from collections.abc import Callable, Iterable
from logging import INFO, WARNING
from typing import Any

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from flwr.app import (  # noqa: E402
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import Result, Strategy  # noqa: E402
from torch import Tensor  # noqa: E402

from listdec_fl.config import AttackConfig, ListDecConfig, SimConfig, check_alpha_match, list_size_for  # noqa: E402
from listdec_fl.data import FederatedData  # noqa: E402
from listdec_fl.listdec import ModelList  # noqa: E402
from listdec_fl.models import FlatModel  # noqa: E402

CACHE_KEY = "listdec-loss-cache"  #: the ClientApp's per-node cache of candidate losses (``context.state``)

log = logging.getLogger("flwr").log


class ListDecodable(Strategy):
    """List-decodable federated learning (LiD-FL) as a Flower strategy.

    Args:
        alpha: fraction of malicious nodes the list is sized for; k = floor(1/(1-alpha)).
        list_size: overrides k.
        min_available_nodes: wait for this many nodes before each round (at least 1).
        seed: seeds the choice of listed model and of the training node.
        arrayrecord_key: key of the model ``ArrayRecord`` in train messages (also ``"model-{j}"`` in
            evaluate messages).
        momentum_key: key of the momentum ``ArrayRecord`` (sent and returned in train messages).
        configrecord_key: key of the ``ConfigRecord``.

    Paper: Liu et al., AAAI 2025, Algorithm 1.

    Attributes:
        models: the current list of ``ArrayRecord`` s (after :meth:`start`, the list-decoded output).
        state: the underlying :class:`~listdec_fl.listdec.ModelList` (selections, vote history).
    """

    def __init__(self, *, alpha: float = 0.6, list_size: int | None = None, min_available_nodes: int = 2,
                 seed: int = 0, arrayrecord_key: str = "arrays", momentum_key: str = "momentum",
                 configrecord_key: str = "config") -> None:
        if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha (fraction of malicious nodes): expected 0 <= alpha < 1, given {alpha!r}")
        k = list_size if list_size is not None else list_size_for(alpha)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"list_size: expected an int >= 1, given {k!r}")
        if not isinstance(min_available_nodes, int) or min_available_nodes < 1:
            raise ValueError(f"min_available_nodes: expected an int >= 1, given {min_available_nodes!r}")
        self.alpha, self.k = alpha, k
        self.min_available_nodes = min_available_nodes
        self.arrayrecord_key, self.momentum_key, self.configrecord_key = arrayrecord_key, momentum_key, configrecord_key
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        self.state: ModelList | None = None
        self.ids: list[int] = []  # candidate id of each listed model, parallel to state.models
        self._next_id = 0
        self._sent: dict[int, set[int]] = {}  # node -> candidate ids it has scored (and cached)
        self._pending = False  # a candidate was appended and awaits the vote
        self.best_index: int | None = None

    # -- helpers --------------------------------------------------------------------------------------------
    @property
    def models(self) -> list[ArrayRecord]:
        return list(self.state.models) if self.state is not None else []

    def _nodes(self, grid: Grid) -> list[int]:
        import time

        waited = 0.0
        while len(nodes := sorted(grid.get_node_ids())) < self.min_available_nodes:
            if waited == 0.0:
                log(INFO, "ListDecodable: waiting for %d nodes (%d connected)", self.min_available_nodes, len(nodes))
            time.sleep(0.5)
            waited += 0.5
        return nodes

    def summary(self) -> None:
        log(INFO, "\t├──> LiD-FL: list size k = %d (alpha = %s)", self.k, self.alpha)
        log(INFO, "\t└──> one node trains per round; every node votes on the new candidate (losses cached)")

    # -- training -------------------------------------------------------------------------------------------
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        if self.state is None:
            self.state = ModelList.replicate(arrays, self.k, momentum=None)
            self.ids, self._next_id = list(range(self.k)), self.k
        nodes = self._nodes(grid)
        i = self.state.choose(self.generator)
        node = nodes[int(torch.randint(0, len(nodes), (1,), generator=self.generator))]
        cfg = ConfigRecord(dict(config))
        cfg["server-round"] = server_round
        cfg["model-index"] = i
        content = RecordDict({self.arrayrecord_key: self.state.models[i], self.configrecord_key: cfg})
        if self.state.momenta[i] is not None:
            content[self.momentum_key] = self.state.momenta[i]
        log(INFO, "configure_train: listed model %d -> node %d (of %d)", i, node, len(nodes))
        return [grid.create_message(content, MessageType.TRAIN, node, str(server_round))]

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        ok = [m for m in replies if not m.has_error() and self.arrayrecord_key in m.content.array_records]
        if not ok:
            log(WARNING, "aggregate_train: no usable reply in round %d; the list stays as it is", server_round)
            self._pending = False
            return None, None
        content = ok[0].content
        new = content.array_records[self.arrayrecord_key]
        if self.state is None or set(new.keys()) != set(self.state.models[0].keys()):
            log(WARNING, "aggregate_train: the reply's arrays do not match the model's keys; ignored")
            self._pending = False
            return None, None
        mom = content.array_records.get(self.momentum_key)
        self.state.append(new, mom)
        self.ids.append(self._next_id)
        self._next_id += 1
        self._pending = True
        metrics = next(iter(content.metric_records.values()), None)
        return new, metrics

    # -- voting ----------------------------------------------------------------------------------------------
    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """One message per node: the k+1 candidate ids, and the arrays of those the node has not scored."""
        if not self._pending or self.state is None:
            return []
        cfg = ConfigRecord(dict(config))
        cfg["server-round"] = server_round
        cfg["num-models"] = len(self.state.models)
        cfg["candidate-ids"] = list(self.ids)
        out = []
        for nd in self._nodes(grid):
            have = self._sent.get(nd, set())
            content = RecordDict({f"model-{cid}": m for cid, m in zip(self.ids, self.state.models) if cid not in have})
            content[self.configrecord_key] = cfg
            out.append(grid.create_message(content, MessageType.EVALUATE, nd, str(server_round)))
        return out

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        if not self._pending or self.state is None:
            return None
        m = len(self.state.models)
        votes, losses = [], []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                self._sent.pop(node, None)  # e.g. a restarted node without its cache: resend everything
                continue
            self._sent[node] = set(self.ids)
            rec = next(iter(msg.content.metric_records.values()), None)
            v = rec.get("vote") if rec is not None else None
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < m:
                log(WARNING, "aggregate_evaluate: node %d sent an invalid vote %r; discarded", node, v)
                continue
            votes.append(v)  # an index into candidate-ids, i.e. into state.models
            if "losses" in rec and len(rec["losses"]) == m:
                losses.append(list(rec["losses"]))
        self._pending = False
        if not votes:  # nobody voted: drop the newest candidate so the list keeps k models
            log(WARNING, "aggregate_evaluate: no valid vote in round %d; the new candidate is dropped", server_round)
            for lst in (self.state.models, self.state.momenta, self.state.selections, self.ids):
                lst.pop()
            return None
        counts = torch.bincount(torch.tensor(votes), minlength=m)
        rm = self.state.prune(torch.tensor(votes))
        removed_id = self.ids.pop(rm)
        for have in self._sent.values():
            have.discard(removed_id)
        out = MetricRecord({"votes": counts.tolist(), "removed": rm, "removed-id": removed_id,
                            "new-kept": int(rm != m - 1), "num-voters": len(votes), "list-size": len(self.state.models)})
        if losses:
            out["min-mean-loss"] = float(torch.tensor(losses).mean(0).min())
        return out

    # -- the loop ----------------------------------------------------------------------------------------------
    def start(self, grid: Grid, initial_arrays: ArrayRecord, num_rounds: int = 3, timeout: float = 3600,
              train_config: ConfigRecord | None = None, evaluate_config: ConfigRecord | None = None,
              evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None) -> Result:
        """Flower's loop with list-aware centralized evaluation.

        ``evaluate_fn(round, arrays)`` is applied to EVERY listed model; the recorded MetricRecord holds, for
        each key, the list of values and ``best-<key>`` (the min for keys containing "loss", else the max; the
        paper reports the best listed model's accuracy). At the end ``result.arrays`` is the listed model with the best ``evaluate_fn`` accuracy
        (first key containing "acc", else the first key) or, without ``evaluate_fn``, listed model 0;
        :attr:`models` holds the whole list.
        """
        self._reset()
        wrapped = None
        if evaluate_fn is not None:
            def wrapped(rnd: int, arrays: ArrayRecord) -> MetricRecord | None:
                models = self.models or [arrays]
                recs = [evaluate_fn(rnd, a) for a in models]
                if any(r is None for r in recs):
                    return None
                out = MetricRecord()
                for key in recs[0].keys():
                    vals = [float(r[key]) for r in recs]
                    out[key] = vals
                    out[f"best-{key}"] = min(vals) if "loss" in key else max(vals)
                keys = list(recs[0].keys())
                main = next((kk for kk in keys if "acc" in kk), keys[0] if keys else None)
                if main is not None:
                    self.best_index = max(range(len(models)), key=lambda j: float(recs[j][main]))
                return out

        result = super().start(grid, initial_arrays, num_rounds=num_rounds, timeout=timeout,
                               train_config=train_config, evaluate_config=evaluate_config, evaluate_fn=wrapped)
        if self.models:
            result.arrays = self.models[self.best_index or 0]
        return result


# -- ClientApp -------------------------------------------------------------------------------------------------


def flat_from_record(model: FlatModel, rec: ArrayRecord) -> Tensor:
    """The flat parameter vector of ``model`` held in a Flower ``ArrayRecord``."""
    module = model.module()
    module.load_state_dict(rec.to_torch_state_dict())
    return model.flatten(module)


def record_from_flat(model: FlatModel, flat: Tensor) -> ArrayRecord:
    """A Flower ``ArrayRecord`` (the module's state dict) holding the flat parameter vector ``flat``."""
    return ArrayRecord(model.module(flat.detach().cpu()).state_dict())


def make_client_app(data: FederatedData, model: FlatModel, *, byzantine: Iterable[int] = (),
                    attack: AttackConfig | None = None, cfg: ListDecConfig | None = None) -> ClientApp:
    """A Flower ``ClientApp`` for LiD-FL on the simulator's data: node ``partition-id`` p holds client p's data.

    * train: local SGD with momentum (``cfg``: steps, batch, lr, momentum; a ``"momentum"`` ArrayRecord in the
      message seeds the buffer) from the received model; replies with the new weights and momentum.
    * evaluate: mean cross-entropy of every received candidate on the node's validation split; the vote is
      the argmin, or for a malicious node the argmax (``cfg.byzantine_vote="worst"``) / a random non-best one.

    Malicious nodes (``byzantine`` partition ids) run ``attack``: signflip / gauss / labelflip during their
    local training; ipm / alie / omniscient collude, computing the honest nodes' updates from the broadcast
    model on their data (as the official code does) and sending the attacked update.
    """
    from listdec_fl.functional import byzantine_update, cast_votes
    from listdec_fl.simulator import UPDATE_ATTACKS, attack_z, train_clients

    cfg = cfg or ListDecConfig()
    attack = attack or AttackConfig(name="none")
    byz = torch.zeros(data.n_clients, dtype=torch.bool)
    for p in byzantine:
        if not 0 <= int(p) < data.n_clients:
            raise ValueError(f"byzantine: expected partition ids in [0, {data.n_clients}), given {p}")
        byz[int(p)] = True
    n_b = int(byz.sum())
    honest = (~byz).nonzero().squeeze(1)
    sim_stub = SimConfig(n_clients=data.n_clients, alpha=n_b / data.n_clients, attack=attack, rounds=1)
    z = attack_z(sim_stub) if attack.name == "alie" else 0.0
    app = ClientApp()

    def _pid(context: Context) -> int:
        p = int(context.node_config["partition-id"])
        if not 0 <= p < data.n_clients:
            raise ValueError(f"partition-id: expected in [0, {data.n_clients}), given {p}")
        return p

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        p = _pid(context)
        gen = torch.Generator().manual_seed(hash((p, int(msg.content["config"].get("server-round", 0)))) % 2**31)
        theta = flat_from_record(model, msg.content["arrays"])
        vel = (flat_from_record(model, msg.content["momentum"]) if "momentum" in msg.content.array_records
               else torch.zeros_like(theta))
        is_b, atk = bool(byz[p]), attack.name
        kw = dict(steps=cfg.local_steps, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum, generator=gen)
        if is_b and atk in UPDATE_ATTACKS:
            th_h, _, loss = train_clients(model, data, honest, theta.expand(len(honest), -1),
                                           vel.expand(len(honest), -1), **kw)
            new = theta + byzantine_update(atk, th_h - theta, n_b, data.n_clients, ipm_epsilon=attack.ipm_epsilon,
                                           alie_z=z)
            new_v, loss = vel, loss.mean()
        else:
            one = torch.tensor([is_b])
            th1, v1, loss = train_clients(model, data, torch.tensor([p]), theta[None], vel[None],
                                           flip=one & (atk == "labelflip"), signflip=one & (atk == "signflip"),
                                           gauss=one & (atk == "gauss"), **kw)
            new, new_v, loss = th1[0], v1[0], loss[0]
        content = RecordDict({"arrays": record_from_flat(model, new), "momentum": record_from_flat(model, new_v),
                              "metrics": MetricRecord({"train-loss": float(loss),
                                                       "num-examples": int(data.train_counts[p])})})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        p = _pid(context)
        conf = msg.content["config"]
        ids = [int(c) for c in conf["candidate-ids"]]
        cache = context.state.metric_records.get(CACHE_KEY, MetricRecord())
        _, _, vx, vy = data.client(p)
        losses, missing = [], []
        with torch.no_grad():
            for cid in ids:
                key = f"model-{cid}"
                if key in msg.content.array_records:
                    theta = flat_from_record(model, msg.content.array_records[key])
                    cache[str(cid)] = float(F.cross_entropy(model.logits_shared(theta[None], vx)[0], vy))
                if str(cid) not in cache:
                    missing.append(cid)
                    continue
                losses.append(float(cache[str(cid)]))
        if missing:
            context.state[CACHE_KEY] = MetricRecord()
            return Message(Error(code=0, reason=f"evaluate: candidates {missing} were neither sent nor cached"),
                           reply_to=msg)
        context.state[CACHE_KEY] = MetricRecord({str(c): cache[str(c)] for c in ids})  # drop removed ones
        gen = torch.Generator().manual_seed(hash((p, int(conf.get("server-round", 0)), 1)) % 2**31)
        vote = int(cast_votes(torch.tensor([losses]), byz[p:p + 1], cfg.byzantine_vote, gen)[0])
        rec = MetricRecord({"losses": losses, "vote": vote, "num-examples": int(vx.shape[0])})
        return Message(content=RecordDict({"metrics": rec}), reply_to=msg)

    return app


def make_evaluate_fn(data: FederatedData, model: FlatModel) -> Callable[[int, ArrayRecord], MetricRecord]:
    """Centralised test accuracy / loss of one model (``ListDecodable.start`` applies it to every listed model)."""

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        theta = flat_from_record(model, arrays)
        with torch.no_grad():
            logits = model.logits_shared(theta[None], data.test_x)[0]
        return MetricRecord({"accuracy": float((logits.argmax(-1) == data.test_y).float().mean()),
                             "loss": float(F.cross_entropy(logits, data.test_y))})

    return evaluate_fn


class InProcessGrid(Grid):
    """An in-process ``Grid`` built from Flower's public API: messages go straight to a ``ClientApp`` per
    virtual node, no Ray, no network.

    For tests and debugging of strategies: ``strategy.start(grid=InProcessGrid(client_app, n), ...)`` runs the
    same strategy code as Flower's simulation engine and deployments (strategies must build their messages
    with ``grid.create_message``, as :class:`ListDecodable` does). Node ``i`` gets ``node_config =
    {"partition-id": i, "num-partitions": n}`` and a ``state`` that persists across rounds, like the
    simulation engine. A ClientApp exception becomes an error reply, as in Flower's runtimes.
    """

    def __init__(self, client_app: ClientApp, num_nodes: int, seed: int = 0) -> None:
        if not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"num_nodes: expected an int >= 1, given {num_nodes!r}")
        g = torch.Generator().manual_seed(seed)
        ids = torch.randperm(10_000_000, generator=g)[:num_nodes].add(2).tolist()  # 1 is the server
        self.client_app = client_app
        self.contexts = {nid: Context(run_id=0, node_id=nid, node_config={"partition-id": i, "num-partitions": num_nodes},
                                      state=RecordDict(), run_config={}) for i, nid in enumerate(ids)}
        self._run: Any = None
        self._counter = 0

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        import time

        from flwr.app import DEFAULT_TTL

        self._counter += 1
        meta = Metadata(run_id=0, message_id=f"in-process-{self._counter}", src_node_id=1, dst_node_id=dst_node_id,
                        reply_to_message_id="", group_id=group_id, created_at=time.time(),
                        ttl=DEFAULT_TTL if ttl is None else ttl, message_type=message_type)
        return Message(content, metadata=meta)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("InProcessGrid delivers synchronously; use send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("InProcessGrid delivers synchronously; use send_and_receive")

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            nid = msg.metadata.dst_node_id
            if nid not in self.contexts:
                raise ValueError(f"InProcessGrid: unknown destination node {nid}; expected one of get_node_ids()")
            try:
                reply = self.client_app(msg, self.contexts[nid])
            except Exception as e:  # noqa: BLE001 - delivered as an error reply, as the real engines do
                reply = Message(Error(code=0, reason=f"{type(e).__name__}: {e}"), reply_to=msg)
            replies.append(reply)
        return replies


def _init_ray(init_args: dict[str, Any], attempts: int = 3) -> None:
    import ray

    if ray.is_initialized():
        return
    args = {"include_dashboard": False, "logging_level": logging.ERROR, **init_args}
    for a in range(attempts):
        try:
            ray.init(**args)
            return
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception on startup timeouts
            log(WARNING, "Ray failed to start (attempt %d/%d): %s", a + 1, attempts, e)
            ray.shutdown()
            if a == attempts - 1:
                raise RuntimeError(f"Ray did not start in {attempts} attempts (last error: {e}); the machine may be "
                                   "overloaded, see ray-project/ray#65983") from e


def run_flower_simulation(sim: SimConfig, cfg: ListDecConfig, *, data: FederatedData | None = None,
                          backend_config: dict[str, Any] | None = None, verbose: bool = False,
                          ray_init_attempts: int = 3) -> tuple[Result, ListDecodable]:
    """Run LiD-FL in Flower's simulation engine (Ray backend) with ``sim.n_clients`` virtual nodes.

    Args:
        sim: data, clients, alpha, attack, rounds (= Flower rounds), seed.
        cfg: LiD-FL hyper-parameters.
        data: optional pre-loaded data.
        backend_config: Flower backend config; default: 2 CPUs in total, 1 per ClientApp actor, a small Ray
            object store.
        verbose: Flower's debug logging.
        ray_init_attempts: Ray's raylet gives its dashboard agent a fixed 15 s to start and aborts otherwise
            (ray-project/ray#65983), which happens on overloaded machines; we start Ray ourselves, retrying,
            and Flower reuses it. Ray is shut down at the end.

    Returns:
        (Flower ``Result``, the ``ListDecodable`` strategy, whose ``models`` is the final list).
    """
    from flwr.simulation import run_simulation

    from listdec_fl.simulator import byzantine_mask, data_for, model_for

    check_alpha_match(sim.alpha, cfg, "run_flower_simulation")
    data = data_for(sim, cfg.valid_fraction, data)
    model = model_for(sim, data)
    byz = byzantine_mask(sim.n_clients, sim.n_byzantine, sim.seed) if sim.attack.name != "none" else \
        torch.zeros(sim.n_clients, dtype=torch.bool)
    client_app = make_client_app(data, model, byzantine=byz.nonzero().squeeze(1).tolist(), attack=sim.attack, cfg=cfg)
    strategy = ListDecodable(alpha=cfg.alpha, list_size=cfg.k, min_available_nodes=sim.n_clients, seed=sim.seed)
    theta0 = model.init(1, torch.Generator().manual_seed(sim.seed))[0]
    evaluate_fn = make_evaluate_fn(data, model)
    holder: dict[str, Result] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        holder["result"] = strategy.start(grid=grid, initial_arrays=record_from_flat(model, theta0),
                                          num_rounds=sim.rounds, evaluate_fn=evaluate_fn)

    if backend_config is None:
        backend_config = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                          "init_args": {"num_cpus": 2, "object_store_memory": 128 * 1024 * 1024,
                                        "include_dashboard": False}}
    _init_ray(backend_config.get("init_args", {}), attempts=ray_init_attempts)
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=sim.n_clients,
                   backend_config=backend_config, verbose_logging=verbose)
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if "result" not in holder:
        raise RuntimeError("Flower simulation finished without a result (see the Flower log above)")
    return holder["result"], strategy
