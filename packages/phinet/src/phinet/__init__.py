"""phinet: PhiNet and X-PhiNet, hippocampus-inspired non-contrastive self-supervised learning.

Paper: Ishikawa, Yamada, Bao, Takezawa, "PhiNets: Brain-inspired Non-contrastive Learning Based on Temporal
Prediction Hypothesis", ICLR 2025 (arXiv 2405.14650).
"""

from phinet.augment import AugmentSpec, BatchAugment, ThreeViewTransform
from phinet.backbones import CifarResNet18, SmallCNN, build_backbone
from phinet.config import BACKBONES, MODELS, ModelConfig, TrainConfig
from phinet.data import load_images, split_tasks
from phinet.functional import collapse_std, ema_update_, knn_accuracy, phinet_loss, simsiam_loss
from phinet.models import BYOL, PhiNet, SimSiam, SSLModel, SSLOutput, XPhiNet, build_model
from phinet.monitor import CollapseMonitor, HistoryLogger, linear_probe
from phinet.train import Trainer

__version__ = "0.1.0"

__all__ = [
    "AugmentSpec", "BatchAugment", "ThreeViewTransform", "CifarResNet18", "SmallCNN", "build_backbone",
    "BACKBONES", "MODELS", "ModelConfig", "TrainConfig", "load_images", "split_tasks", "collapse_std",
    "ema_update_", "knn_accuracy", "phinet_loss", "simsiam_loss", "BYOL", "PhiNet", "SimSiam", "SSLModel",
    "SSLOutput", "XPhiNet", "build_model", "CollapseMonitor", "HistoryLogger", "linear_probe", "Trainer",
]
