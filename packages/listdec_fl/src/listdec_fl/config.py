"""Configurations of LiD-FL, the attacks, the baseline aggregators and the simulator.

Defaults follow the official code (jerry907/LiD-List-Decodable-Federated-Learning, `scripts/iid_lr.sh`,
`scripts/sigmdl.sh`, `main_fl.py`) and the paper (Liu et al., AAAI 2025, Sec. 5 "Experiments").
Every config is a frozen, keyword-only ``papercommon.config.Config`` (``to_dict`` / ``from_dict`` / ``replace``
written once there) whose ``validate`` rejects bad values with ``papercommon.checks`` messages
("name: expected X, got Y").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from papercommon.checks import check_choice, check_int, check_positive, check_range
from papercommon.config import Config

ATTACKS = ("none", "signflip", "gauss", "labelflip", "ipm", "alie", "omniscient")
AGGREGATORS = ("fedavg", "median", "trimmed_mean", "geomed", "krum", "multikrum", "normclip")
MODELS = ("logreg", "cnn")
PARTITIONS = ("iid", "dirichlet")
BYZANTINE_VOTES = ("worst", "random")


def _check(cond: bool, what: str, expected: str, given: Any) -> None:
    if not cond:
        raise ValueError(f"{what}: expected {expected}, got {given!r}")


def _alpha(name: str, alpha: Any) -> float:
    return check_range(f"{name} (fraction of malicious clients, 0 <= alpha < 1)", alpha, 0.0, 1.0,
                       inclusive=(True, False))


def list_size_for(alpha: float) -> int:
    """The paper's list size k = floor(1 / (1 - alpha)).

    The official code computes ``int(1 // (1 - corp_rate))``; we add 1e-9 before flooring so that a
    fraction such as alpha = 2/3 gives k = 3 (exact arithmetic) and not 2 (float rounding), which keeps the
    survival guarantee ``k (1 - alpha) > alpha``.

    Paper: Sec. 4, list size k = floor(1/(1-alpha)).
    """
    _alpha("alpha", alpha)
    return int(math.floor(1.0 / (1.0 - alpha) + 1e-9))


def num_byzantine(alpha: float, n_clients: int) -> int:
    """floor(alpha * n) malicious clients, as the official ``sample_corp_locals``."""
    _alpha("alpha", alpha)
    check_int("n_clients", n_clients)
    return int(math.floor(alpha * n_clients + 1e-9))


def check_alpha_match(sim_alpha: float, cfg: ListDecConfig, where: str = "run_listdec") -> None:
    """The list must be sized for the simulated malicious fraction.

    ``ListDecConfig.alpha`` sets k = floor(1/(1-alpha)); if it differs from the simulated ``SimConfig.alpha``
    the survival guarantee is void (e.g. alpha 0.6 -> k = 2 against 80% malicious clients runs to chance
    accuracy), so a mismatch raises. An explicit ``list_size`` is the user's choice of k and is accepted.
    """
    if cfg.list_size is None and abs(cfg.alpha - sim_alpha) > 1e-12:
        raise ValueError(
            f"{where}: ListDecConfig.alpha: expected the simulated SimConfig.alpha = {sim_alpha} (list size "
            f"k = {list_size_for(sim_alpha)}), given {cfg.alpha} (k = {cfg.k}); set ListDecConfig(alpha={sim_alpha}) "
            "or choose k explicitly with ListDecConfig(list_size=...)")


@dataclass(frozen=True, kw_only=True)
class ListDecConfig(Config):
    """LiD-FL (Algorithm 1) hyper-parameters.

    Args:
        alpha: fraction of malicious clients the list is sized for (official ``--corp_rate`` 0.6).
        list_size: k; ``None`` gives the paper's k = floor(1/(1-alpha)) (official ``--list_size`` override).
        byzantine_vote: how malicious clients vote: ``"worst"`` = argmax of their validation loss (official
            default ``--vote_at worst``) or ``"random"`` = uniform over all models but their best.
        local_steps: minibatch SGD steps of the sampled client (official ``local_epochs`` 25, which are steps).
        batch_size: local minibatch (official 32).
        lr: local learning rate (official 0.01).
        momentum: heavy-ball momentum kept per listed model (official ``--mu 0.9`` with ``CustomSGD``).
        valid_fraction: share of each client's train data held out for voting (official ``--valid_rate 0.2``).

    Paper: Sec. 4 (Algorithm 1), Sec. 5 experimental setup; official ``scripts/iid_lr.sh``.
    """

    alpha: float = 0.6
    list_size: int | None = None
    byzantine_vote: Literal["worst", "random"] = "worst"
    local_steps: int = 25
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    valid_fraction: float = 0.2

    def validate(self) -> None:
        _alpha("alpha", self.alpha)
        if self.list_size is not None:
            check_int("list_size", self.list_size)
        check_choice("byzantine_vote", self.byzantine_vote, BYZANTINE_VOTES)
        check_int("local_steps", self.local_steps)
        check_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_range("momentum", self.momentum, 0.0, 1.0, inclusive=(True, False))
        check_range("valid_fraction", self.valid_fraction, 0.0, 1.0, inclusive=(False, False))

    @property
    def k(self) -> int:
        """The list size actually used."""
        return self.list_size if self.list_size is not None else list_size_for(self.alpha)


@dataclass(frozen=True, kw_only=True)
class AttackConfig(Config):
    """A Byzantine attack (official ``--at``).

    Args:
        name: ``none``; ``signflip`` (negated gradients); ``gauss`` (gradients replaced by N(0, std(g)));
            ``labelflip`` (y -> C-1-y on malicious clients' train data); ``ipm`` (inner-product manipulation,
            official "empire": -eps * mean(honest) * n_h / n_b); ``alie`` ("a little is enough", official
            "little": mean - z * std of honest updates); ``omniscient`` (-mean(honest) for LiD-FL; scaled so
            that the plain mean equals -mean(honest) for single-model aggregators, as official SigMdl).
        ipm_epsilon: IPM scale (official ``--empire_para 1.1``).
        alie_z: ALIE z (official ``--little_z 20``, the value the official runs use, since Baruch et al.'s
            ``norm.ppf`` formula is undefined under a malicious majority). ``None`` uses Baruch et al.'s
            formula and raises when it is undefined.
    """

    name: Literal["none", "signflip", "gauss", "labelflip", "ipm", "alie", "omniscient"] = "signflip"
    ipm_epsilon: float = 1.1
    alie_z: float | None = 20.0

    def validate(self) -> None:
        check_choice("attack name", self.name, ATTACKS)
        check_positive("ipm_epsilon", self.ipm_epsilon)
        if self.alie_z is not None:
            check_positive("alie_z", self.alie_z, allow_zero=True)


@dataclass(frozen=True, kw_only=True)
class BaselineConfig(Config):
    """A single-model robust aggregation baseline (official ``Algorithms/SigMdl``): every client trains
    each round and the server aggregates all n updates.

    Args:
        aggregator: one of ``fedavg, median (CWM), trimmed_mean (CWTM), geomed (GM), krum, multikrum,
            normclip``.
        local_steps, batch_size, lr: as LiD-FL (official ``scripts/sigmdl.sh``: 25, 32, 0.01).
        momentum: the official baselines use plain ``SGD`` (``--mu`` only reaches ``CustomSGD``), so 0.
        trim_fraction: CWTM trims ``min(n // 2, ceil(n * trim_fraction))`` per side; ``None`` = alpha
            (official ``out_eta = corp_rate``).
        geomed_iters: Weiszfeld iterations (official ``--gm_iter`` default 1).
        norm_bound: norm-clipping radius (official fixed bound 0.215771).
        krum_f: Byzantine count Krum assumes; ``None`` = the true count floor(alpha * n).
        multikrum_m: how many Krum-selected updates Multi-Krum averages; ``None`` = n - f.
    """

    aggregator: str = "fedavg"
    local_steps: int = 25
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.0
    trim_fraction: float | None = None
    geomed_iters: int = 1
    norm_bound: float = 0.215771
    krum_f: int | None = None
    multikrum_m: int | None = None

    def validate(self) -> None:
        check_choice("aggregator", self.aggregator, AGGREGATORS)
        check_int("local_steps", self.local_steps)
        check_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_range("momentum", self.momentum, 0.0, 1.0, inclusive=(True, False))
        if self.trim_fraction is not None:
            check_range("trim_fraction", self.trim_fraction, 0.0, 1.0, inclusive=(True, False))
        check_int("geomed_iters", self.geomed_iters)
        check_positive("norm_bound", self.norm_bound)
        if self.krum_f is not None:
            check_int("krum_f", self.krum_f, min_value=0)
        if self.multikrum_m is not None:
            check_int("multikrum_m", self.multikrum_m)


@dataclass(frozen=True, kw_only=True)
class SimConfig(Config):
    """The federated setting of the simulator.

    Args:
        dataset: a ``papercommon.data.image_dataset`` name ("digits", "mnist5k", "fashion-mnist", "cifar10").
        n_clients: clients (official 35).
        alpha: fraction of malicious clients; floor(alpha * n) of them, drawn at random.
        attack: the attack the malicious clients run.
        model: ``logreg`` (multinomial logistic regression, the paper's convex model) or ``cnn``.
        partition: ``iid`` or ``dirichlet`` (label shares per client ~ Dir(dirichlet_alpha); paper: 0.1).
        dirichlet_alpha: concentration of the Dirichlet split.
        rounds: global rounds (official 1500).
        eval_every: test every this many rounds (official 50).
        seed: seeds data split, malicious set, initialisation and all sampling.
        max_train: optional cap on the training set (quick runs); ``None`` = all.
    """

    dataset: str = "digits"
    n_clients: int = 35
    alpha: float = 0.6
    attack: AttackConfig = AttackConfig()
    model: Literal["logreg", "cnn"] = "logreg"
    partition: Literal["iid", "dirichlet"] = "iid"
    dirichlet_alpha: float = 0.1
    rounds: int = 1500
    eval_every: int = 50
    seed: int = 0
    max_train: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.attack, dict):
            object.__setattr__(self, "attack", AttackConfig.from_dict(self.attack))
        super().__post_init__()

    def validate(self) -> None:
        _check(isinstance(self.attack, AttackConfig), "attack", "an AttackConfig", self.attack)
        check_int("n_clients", self.n_clients, min_value=2)
        _alpha("alpha", self.alpha)
        check_choice("model", self.model, MODELS)
        check_choice("partition", self.partition, PARTITIONS)
        check_positive("dirichlet_alpha", self.dirichlet_alpha)
        check_int("rounds", self.rounds)
        check_int("eval_every", self.eval_every)
        if self.max_train is not None:
            check_int("max_train", self.max_train, min_value=self.n_clients)
        _check(self.alpha == 0 or self.attack.name == "none" or num_byzantine(self.alpha, self.n_clients) >= 1,
               "floor(alpha * n_clients) malicious clients", "at least 1 when alpha > 0 under an attack (too few clients)",
               (self.alpha, self.n_clients))

    @property
    def n_byzantine(self) -> int:
        return num_byzantine(self.alpha, self.n_clients)
