"""listdec_fl: list-decodable federated learning (LiD-FL, Liu et al., AAAI 2025).

A server keeps a list of k = floor(1/(1-alpha)) models; each round one listed model is trained by one
sampled client, every client votes for its best candidate by validation loss, and the least-voted model
is dropped. At least one listed model stays good even when most clients are malicious.

Public API:
    configs: ListDecConfig, AttackConfig, BaselineConfig, SimConfig, list_size_for
    algorithm: ModelList (the server state), functional (votes, pruning, attacks, local SGD)
    simulator: run_listdec, run_baselines, load_federated, FederatedData
    aggregators: fedavg, median, trimmed_mean, geomed, krum, multikrum, normclip
    Flower: listdec_fl.flower.ListDecodable (a flwr.serverapp.strategy.Strategy), make_client_app, run_flower_simulation
"""

from listdec_fl.config import (
    AGGREGATORS,
    ATTACKS,
    AttackConfig,
    BaselineConfig,
    ListDecConfig,
    SimConfig,
    list_size_for,
    num_byzantine,
)
from listdec_fl.data import FederatedData, load_federated
from listdec_fl.listdec import ModelList
from listdec_fl.models import LogisticRegression, SmallCNN, build_model
from listdec_fl.simulator import RunResult, run_baselines, run_listdec

__version__ = "0.1.0"

__all__ = [
    "AGGREGATORS", "ATTACKS", "AttackConfig", "BaselineConfig", "FederatedData", "ListDecConfig", "LogisticRegression",
    "ModelList", "RunResult", "SimConfig", "SmallCNN", "build_model", "list_size_for", "load_federated",
    "num_byzantine", "run_baselines", "run_listdec",
]
