"""A fast in-process federated simulator for LiD-FL and the single-model baselines.

* :func:`run_listdec` runs LiD-FL (Algorithm 1): each round one listed model is trained by one sampled
  client and every client votes with its validation loss. Listed models never change, so each client's
  loss of every listed model is cached and only the new candidate is evaluated (one batched forward over
  all clients' validation data).
* :func:`run_baselines` runs many single-model runs at once (aggregators x alphas x attacks of one data
  split): all clients of all runs train in one batched computation, ``(runs * clients, d)`` parameter
  rows, with common minibatch indices across runs.

Both are seeded: the same configs give the same numbers.

Example:
    >>> from listdec_fl import SimConfig, ListDecConfig, AttackConfig, run_listdec
    >>> sim = SimConfig(dataset="digits", n_clients=20, alpha=0.6, attack=AttackConfig(name="signflip"),
    ...                 rounds=100, eval_every=50)
    >>> res = run_listdec(sim, ListDecConfig(alpha=0.6))
    >>> res.final_accuracy  # best listed model's test accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from listdec_fl import aggregators as agg
from listdec_fl.config import BaselineConfig, ListDecConfig, SimConfig, check_alpha_match
from listdec_fl.data import FederatedData, load_federated
from listdec_fl.functional import alie_z as alie_z_formula
from listdec_fl.functional import byzantine_update, cast_votes, gauss_gradient, local_sgd, sample_batches
from listdec_fl.listdec import ModelList
from listdec_fl.models import FlatModel, build_model

UPDATE_ATTACKS = ("ipm", "alie", "omniscient")


@dataclass
class RunResult:
    """One run's record.

    Attributes:
        name: ``"lidfl"`` or the aggregator's name.
        config: the configs (dicts).
        rounds: the rounds at which the test accuracy was measured.
        accuracy: test accuracy at those rounds (LiD-FL: the best listed model, the paper's metric).
        extra: per-algorithm series (LiD-FL: ``voted_accuracy`` = the most-voted model's accuracy,
            ``list_accuracy`` per listed model, ``new_kept_rate``, ``clean_in_list``).
        seconds: wall time.
    """

    name: str
    config: dict[str, Any]
    rounds: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    models: Tensor | None = field(default=None, repr=False)  #: final parameters (k, d) or (1, d); not saved

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1] if self.accuracy else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config, "rounds": self.rounds, "accuracy": self.accuracy,
                "final_accuracy": self.final_accuracy, "extra": self.extra, "seconds": self.seconds}


# -- shared pieces ---------------------------------------------------------------------------------------


def byzantine_mask(n_clients: int, n_byzantine: int, seed: int) -> Tensor:
    """A seeded random set of ``n_byzantine`` clients; nested in ``n_byzantine`` for a fixed seed."""
    perm = torch.randperm(n_clients, generator=torch.Generator().manual_seed(10_007 + seed))
    mask = torch.zeros(n_clients, dtype=torch.bool)
    mask[perm[:n_byzantine]] = True
    return mask


def data_for(sim: SimConfig, valid_fraction: float, data: FederatedData | None = None) -> FederatedData:
    """``data`` checked against ``sim`` (same number of clients), or ``sim``'s dataset loaded and split."""
    if data is None:
        return load_federated(sim.dataset, sim.n_clients, partition=sim.partition,
                              dirichlet_alpha=sim.dirichlet_alpha, valid_fraction=valid_fraction,
                              seed=sim.seed, max_train=sim.max_train)
    if data.n_clients != sim.n_clients:
        raise ValueError(f"data: expected {sim.n_clients} clients (SimConfig.n_clients), given {data.n_clients}")
    return data


def model_for(sim: SimConfig, data: FederatedData) -> FlatModel:
    """The flat model ``sim.model`` for ``data``'s input shape and classes."""
    return build_model(sim.model, data.in_shape, data.n_classes)


@torch.no_grad()
def test_accuracy(model: FlatModel, params: Tensor, data: FederatedData) -> Tensor:
    """Test accuracy of each of M models, (M, d) -> (M,)."""
    logits = model.logits_shared(params, data.test_x)  # (M, N, C)
    return (logits.argmax(-1) == data.test_y).float().mean(1)


@torch.no_grad()
def client_valid_losses(model: FlatModel, params: Tensor, data: FederatedData) -> Tensor:
    """Every client's mean validation cross-entropy of each of M models: (M, d) -> (n, M)."""
    logits = model.logits_shared(params, data.valid_x)  # (M, N_v, C)
    ce = F.cross_entropy(logits.transpose(1, 2), data.valid_y.expand(params.shape[0], -1), reduction="none")
    sums = torch.zeros(params.shape[0], data.n_clients, dtype=ce.dtype, device=ce.device)
    sums.index_add_(1, data.valid_owner, ce)
    return (sums / data.valid_counts.to(ce.dtype)).T.nan_to_num(nan=9999.0, posinf=9999.0)


def train_clients(model: FlatModel, data: FederatedData, clients: Tensor, params: Tensor, velocity: Tensor, *,
                   steps: int, batch_size: int, lr: float, momentum: float,
                   generator: torch.Generator | Sequence[torch.Generator],
                   flip: Tensor | None = None, signflip: Tensor | None = None, gauss: Tensor | None = None,
                   idx: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Local SGD of R (client, model) rows at once; ``clients (R,)`` says whose data each row uses.

    ``flip`` / ``signflip`` / ``gauss`` are (R,) masks of rows that run that attack. ``idx`` optionally
    gives the minibatch indices (steps, R, B). ``generator`` is one generator, or one per row (then the
    Gauss noise of each row comes from its own generator, so a run's numbers do not depend on which
    other runs share the batch).
    """
    dev = params.device
    if idx is None:
        if not isinstance(generator, torch.Generator):
            raise ValueError("train_clients: pass idx when giving one generator per row")
        idx = sample_batches(data.train_counts[clients.cpu()].cpu(), steps, batch_size, generator)
    idx = idx.to(dev)
    C = data.n_classes
    cl = clients.to(dev).unsqueeze(1)
    flip = flip.to(dev) if flip is not None and bool(flip.any()) else None
    signflip = signflip.to(dev) if signflip is not None and bool(signflip.any()) else None
    gauss_rows = gauss.nonzero().squeeze(1).tolist() if gauss is not None and bool(gauss.any()) else []

    def batches():
        for st in range(steps):
            x = data.train_x[cl, idx[st]]  # (R, B, *in_shape)
            y = data.train_y[cl, idx[st]]  # (R, B)
            if flip is not None:
                y = torch.where(flip.unsqueeze(1), C - 1 - y, y)
            yield x, y

    hook = None
    if signflip is not None or gauss_rows:
        def hook(g: Tensor) -> Tensor:
            if signflip is not None:
                g = torch.where(signflip.unsqueeze(1), -g, g)
            if gauss_rows:
                g = g.clone()
                if isinstance(generator, torch.Generator):
                    g[gauss_rows] = gauss_gradient(g[gauss_rows].cpu(), model.segments, generator).to(dev)
                else:
                    for r in gauss_rows:
                        g[r] = gauss_gradient(g[r:r + 1].cpu(), model.segments, generator[r])[0].to(dev)
            return g

    return local_sgd(model.loss_and_grad, params, velocity, batches(), lr=lr, momentum=momentum, grad_hook=hook)


def _check_shared(runs: Sequence[tuple[SimConfig, Any]], sim_fields: Sequence[str], cfg_fields: Sequence[str],
                  fn: str) -> None:
    s0, c0 = runs[0]
    for s, c in runs:
        for f in sim_fields:
            if getattr(s, f) != getattr(s0, f):
                raise ValueError(f"{fn}: every run must share SimConfig.{f}; expected {getattr(s0, f)!r}, "
                                 f"given {getattr(s, f)!r}")
        for f in cfg_fields:
            if getattr(c, f) != getattr(c0, f):
                raise ValueError(f"{fn}: every run must share {type(c0).__name__}.{f}; expected "
                                 f"{getattr(c0, f)!r}, given {getattr(c, f)!r}")


_SHARED_SIM = ("dataset", "n_clients", "partition", "dirichlet_alpha", "seed", "max_train", "model", "rounds",
               "eval_every")
_SHARED_LOCAL = ("local_steps", "batch_size", "lr", "momentum")


def attack_z(sim: SimConfig) -> float:
    """ALIE's z for ``sim`` (0 for other attacks): the configured value or Baruch et al.'s formula."""
    if sim.attack.name != "alie":
        return 0.0
    return sim.attack.alie_z if sim.attack.alie_z is not None else alie_z_formula(sim.n_clients, sim.n_byzantine)


# -- LiD-FL ------------------------------------------------------------------------------------------------


def run_listdec(sim: SimConfig, cfg: ListDecConfig, data: FederatedData | None = None, *,
                progress: bool = False, device: str | torch.device = "cpu",
                trusted: tuple[Tensor, Tensor] | None = None) -> RunResult:
    """Run LiD-FL in the simulator.

    Args:
        sim: the federated setting (data, clients, alpha, attack, rounds, seed).
        cfg: LiD-FL's hyper-parameters (list size ``cfg.k``).
        data: optional pre-loaded :class:`FederatedData` (else loaded from ``sim``).
        progress: show a tqdm bar.
        device: where the models and data live.
        trusted: optional small trusted validation set ``(x, y)`` held by the server (e.g. from
            :meth:`FederatedData.hold_out_test`), for the non-oracle selection rule ``trusted_accuracy``.

    Returns:
        :class:`RunResult` with the best listed model's test accuracy (an oracle: it reads the test labels)
        every ``sim.eval_every`` rounds, and in ``extra`` the non-oracle picks: ``voted_accuracy`` (the
        most-voted model) and, with ``trusted``, ``trusted_accuracy`` (the listed model most accurate on
        the trusted set, ties to its lower trusted loss).

    Paper: Algorithm 1; official ``scripts/iid_lr.sh``.
    """
    return run_listdec_many([(sim, cfg)], data, progress=progress, device=device, trusted=trusted)[0]


def run_listdec_many(runs: Sequence[tuple[SimConfig, ListDecConfig]], data: FederatedData | None = None, *,
                     progress: bool = False, device: str | torch.device = "cpu",
                     trusted: tuple[Tensor, Tensor] | None = None) -> list[RunResult]:
    """Run several LiD-FL runs in lockstep, batching their local training, votes and tests.

    The runs must share the data split, model, rounds and local-training settings; they may differ in
    alpha, attack, list size and Byzantine vote (``trusted``: see :func:`run_listdec`). Each run has its own random stream (seeded by
    ``sim.seed``), so its numbers do not depend on the other runs in the batch (up to float rounding of
    batched matrix products).
    """
    if not runs:
        raise ValueError("runs: expected at least one (SimConfig, ListDecConfig) pair, given none")
    _check_shared(runs, _SHARED_SIM, _SHARED_LOCAL + ("valid_fraction",), "run_listdec_many")
    for sim, cfg in runs:
        check_alpha_match(sim.alpha, cfg, "run_listdec")
    t0 = time.perf_counter()
    s0, c0 = runs[0]
    data = data_for(s0, c0.valid_fraction, data).to(device)
    model = model_for(s0, data)
    if trusted is not None:
        tx, ty = trusted
        if not isinstance(tx, Tensor) or not isinstance(ty, Tensor) or tx.shape[0] != ty.shape[0] or ty.numel() < 1 \
                or tuple(tx.shape[1:]) != data.in_shape:
            raise ValueError(f"trusted: expected (x, y) tensors with >= 1 sample of shape {data.in_shape}, given "
                             f"{tuple(getattr(tx, 'shape', ()))}, {tuple(getattr(ty, 'shape', ()))}")
        tx, ty = tx.to(device), ty.to(device)
    n, G = s0.n_clients, len(runs)
    theta0 = model.init(1, torch.Generator().manual_seed(s0.seed))[0].to(device)
    L0 = client_valid_losses(model, theta0[None], data).cpu()  # (n, 1)

    st = []
    for sim, cfg in runs:
        byz = byzantine_mask(n, sim.n_byzantine, sim.seed) if sim.attack.name != "none" else torch.zeros(n, dtype=torch.bool)
        k = cfg.k
        st.append({
            "byz": byz, "honest": (~byz).nonzero().squeeze(1), "gen": torch.Generator().manual_seed(sim.seed),
            "ml": ModelList.replicate(theta0, k, momentum=torch.zeros_like(theta0)), "clean": [True] * k,
            "L": L0.expand(n, k).clone(), "z": attack_z(sim), "kept": [],
            "res": RunResult("lidfl", {"sim": sim.to_dict(), "listdec": cfg.to_dict(), "k": k,
                                       "n_byzantine": sim.n_byzantine}),
            "voted": [], "trusted": [], "lists": [], "cleanfrac": [],
        })

    from tqdm.auto import tqdm

    for t in tqdm(range(1, s0.rounds + 1), disable=not progress, desc=f"LiD-FL x{G}"):
        # 1-2. choose a listed model and a client per run; collect the rows to train
        rows_c, rows_th, rows_v, rows_gen, idxs, fl, sf, ga, plan = [], [], [], [], [], [], [], [], []
        for (sim, cfg), S in zip(runs, st):
            i = S["ml"].choose(S["gen"])
            c = int(torch.randint(0, n, (1,), generator=S["gen"]))
            th, v = S["ml"].models[i], S["ml"].momenta[i]
            atk, is_b = sim.attack.name, bool(S["byz"][c])
            cl = S["honest"] if (is_b and atk in UPDATE_ATTACKS) else torch.tensor([c])
            m = len(cl)
            plan.append((i, c, is_b, sum(len(x) for x in rows_c), m))  # (..., row offset, rows)
            rows_c.append(cl)
            rows_th.append(th.expand(m, -1))
            rows_v.append(v.expand(m, -1))
            rows_gen += [S["gen"]] * m
            idxs.append(sample_batches(data.train_counts.cpu()[cl], cfg.local_steps, cfg.batch_size, S["gen"]))
            own = is_b and atk not in UPDATE_ATTACKS
            fl.append(torch.full((m,), own and atk == "labelflip"))
            sf.append(torch.full((m,), own and atk == "signflip"))
            ga.append(torch.full((m,), own and atk == "gauss"))
        clients = torch.cat(rows_c)
        th_all, v_all, _ = train_clients(
            model, data, clients, torch.cat(rows_th), torch.cat(rows_v), steps=c0.local_steps,
            batch_size=c0.batch_size, lr=c0.lr, momentum=c0.momentum, generator=rows_gen,
            flip=torch.cat(fl), signflip=torch.cat(sf), gauss=torch.cat(ga), idx=torch.cat(idxs, dim=1))
        # 3. the new candidate of every run
        news, new_vs = [], []
        for (sim, _), S, (i, _c, is_b, off, m) in zip(runs, st, plan):
            th, v = S["ml"].models[i], S["ml"].momenta[i]
            if is_b and sim.attack.name in UPDATE_ATTACKS:
                # the malicious client sees every honest client's update from the broadcast model
                delta = byzantine_update(sim.attack.name, th_all[off:off + m] - th, sim.n_byzantine, n,
                                         ipm_epsilon=sim.attack.ipm_epsilon, alie_z=S["z"])
                news.append(th + delta)
                new_vs.append(v)
            else:
                news.append(th_all[off].clone())  # clone: a view would keep the whole batch alive
                new_vs.append(v_all[off].clone())
        # 4-5. every client scores every run's candidate; votes; pruning
        Lnew = client_valid_losses(model, torch.stack(news), data).cpu()  # (n, G)
        for g_, ((_, cfg), S, (i, _c, is_b, _, _)) in enumerate(zip(runs, st, plan)):
            ml = S["ml"]
            ml.append(news[g_], new_vs[g_])
            S["clean"].append(S["clean"][i] and not is_b)
            L = torch.cat([S["L"], Lnew[:, g_:g_ + 1]], dim=1)  # (n, k + 1)
            rm = ml.prune(cast_votes(L, S["byz"], cfg.byzantine_vote, S["gen"]))
            S["L"] = torch.cat([L[:, :rm], L[:, rm + 1:]], dim=1)
            S["clean"].pop(rm)
            S["kept"].append(rm != ml.k)
        # test every eval_every rounds: all listed models of all runs in one call
        if t % s0.eval_every == 0 or t == s0.rounds:
            allm = torch.stack([m for S in st for m in S["ml"].models])
            accs = test_accuracy(model, allm, data).cpu()
            if trusted is not None:
                with torch.no_grad():
                    tl = model.logits_shared(allm, tx)  # (M, N_t, C)
                    t_acc = (tl.argmax(-1) == ty).float().mean(1).cpu()
                    t_loss = F.cross_entropy(tl.transpose(1, 2), ty.expand(allm.shape[0], -1),
                                             reduction="none").mean(1).nan_to_num(nan=1e9).cpu()
            off = 0
            for S in st:
                k = S["ml"].k
                if trusted is not None:
                    ta, tlo = t_acc[off:off + k], t_loss[off:off + k]
                    pick = min(range(k), key=lambda j: (-float(ta[j]), float(tlo[j])))
                    S["trusted"].append(float(accs[off + pick]))
                a = accs[off:off + k]
                off += k
                S["res"].rounds.append(t)
                S["res"].accuracy.append(float(a.max()))
                S["voted"].append(float(a[S["ml"].most_voted()]))
                S["lists"].append(a.tolist())
                S["cleanfrac"].append(sum(S["clean"]) / k)
    dt = time.perf_counter() - t0
    out = []
    for S in st:
        res = S["res"]
        res.extra = {"voted_accuracy": S["voted"], "list_accuracy": S["lists"],
                     **({"trusted_accuracy": S["trusted"]} if trusted is not None else {}),
                     "new_kept_rate": sum(S["kept"]) / len(S["kept"]), "clean_in_list": S["cleanfrac"],
                     "history": S["ml"].history}
        res.seconds = dt / G
        res.models = torch.stack(S["ml"].models).cpu()
        out.append(res)
    return out


# -- single-model baselines, batched over runs --------------------------------------------------------------


def run_baselines(runs: Sequence[tuple[SimConfig, BaselineConfig]], data: FederatedData | None = None, *,
                  progress: bool = False, device: str | torch.device = "cpu") -> list[RunResult]:
    """Run many single-model robust-aggregation runs at once.

    All runs must share the data split and the model (dataset, n_clients, partition, dirichlet_alpha,
    seed, max_train, model), rounds and eval_every, and the local-training settings; they may differ in
    alpha, attack and aggregator.

    Args:
        runs: ``(SimConfig, BaselineConfig)`` pairs.
        data: optional pre-loaded data.
        progress: show a tqdm bar.

    Returns:
        One :class:`RunResult` per run, in order.
    """
    if not runs:
        raise ValueError("runs: expected at least one (SimConfig, BaselineConfig) pair, given none")
    _check_shared(runs, _SHARED_SIM, _SHARED_LOCAL, "run_baselines")
    s0, b0 = runs[0]
    t0 = time.perf_counter()
    data = data_for(s0, 0.2, data).to(device)
    model = model_for(s0, data)
    n, G, d = s0.n_clients, len(runs), model.dim
    g = torch.Generator().manual_seed(s0.seed)
    theta = model.init(1, torch.Generator().manual_seed(s0.seed)).expand(G, -1).clone().to(device)  # (G, d)

    byz = torch.stack([byzantine_mask(n, s.n_byzantine, s.seed) if s.attack.name != "none"
                       else torch.zeros(n, dtype=torch.bool) for s, _ in runs])  # (G, n)
    atk = [s.attack.name for s, _ in runs]
    rows_byz = byz.reshape(-1)
    per_row = lambda name: rows_byz & torch.tensor([a == name for a in atk]).repeat_interleave(n)  # noqa: E731
    flip, sflip, gauss = per_row("labelflip"), per_row("signflip"), per_row("gauss")
    clients = torch.arange(n).repeat(G)  # (G*n,)
    upd_runs = [r for r, (s, _) in enumerate(runs) if s.attack.name in UPDATE_ATTACKS and s.n_byzantine > 0]
    groups: dict[str, list[int]] = {}
    for r, (_, bc) in enumerate(runs):
        groups.setdefault(bc.aggregator, []).append(r)
    zs = [attack_z(s) for s, _ in runs]

    results = [RunResult(bc.aggregator, {"sim": s.to_dict(), "baseline": bc.to_dict(), "n_byzantine": s.n_byzantine})
               for s, bc in runs]
    from tqdm.auto import tqdm

    zeros_v = torch.zeros(G * n, d, device=device)
    byz_dev = byz.to(device)
    for t in tqdm(range(1, s0.rounds + 1), disable=not progress, desc=f"baselines x{G}"):
        idx_c = sample_batches(data.train_counts.cpu(), b0.local_steps, b0.batch_size, g)  # (steps, n, B), shared
        start = theta.repeat_interleave(n, dim=0)  # (G*n, d)
        th1, _, _ = train_clients(model, data, clients, start, zeros_v, steps=b0.local_steps,
                                   batch_size=b0.batch_size, lr=b0.lr, momentum=b0.momentum, generator=g,
                                   flip=flip, signflip=sflip, gauss=gauss, idx=idx_c.repeat(1, G, 1))
        upd = (th1 - start).view(G, n, d)
        for r in upd_runs:
            s = runs[r][0]
            bad = byzantine_update(s.attack.name, upd[r], s.n_byzantine, n, ipm_epsilon=s.attack.ipm_epsilon,
                                   alie_z=zs[r], single_model=True, mask=~byz_dev[r])
            upd[r, byz_dev[r]] = bad
        step = torch.empty(G, d, device=device)
        for name, rs in groups.items():
            # per-run options (alpha, f, ...) can differ: aggregate the runs that share them together
            keyed: dict[tuple, list[int]] = {}
            for r in rs:
                s, bcr = runs[r]
                keyed.setdefault((s.alpha, s.n_byzantine, bcr.trim_fraction, bcr.geomed_iters, bcr.norm_bound,
                                  bcr.krum_f, bcr.multikrum_m), []).append(r)
            for (alpha, nb, tf, gi, nbnd, kf, mm), rr in keyed.items():
                step[rr] = agg.aggregate(name, upd[rr], alpha=alpha, n_byzantine=nb, trim_fraction=tf,
                                         geomed_iters=gi, norm_bound=nbnd, krum_f=kf, multikrum_m=mm)
        theta = theta + step
        if t % s0.eval_every == 0 or t == s0.rounds:
            accs = test_accuracy(model, theta, data).cpu()  # a diverged (non-finite) model scores what it predicts
            for r in range(G):
                results[r].rounds.append(t)
                results[r].accuracy.append(float(accs[r]))
    dt = time.perf_counter() - t0
    for r, res in enumerate(results):
        res.seconds = dt / G
        res.models = theta[r:r + 1].cpu().clone()
    return results
