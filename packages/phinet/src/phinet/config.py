"""Configurations for PhiNet, X-PhiNet and their baselines, with the paper's defaults.

Two frozen dataclasses:

* :class:`ModelConfig` - which model (SimSiam, PhiNet, X-PhiNet, their cosine variants, BYOL), the backbone,
  the projector and predictor widths, the Sim-2 weight and the EMA rate.
* :class:`TrainConfig` - the optimiser and schedule (SGD with momentum, lr = base_lr * batch / 256, linear
  warm-up then cosine decay), the weight decay, the monitors.

Defaults are the official code's CIFAR-10 settings (riverstone496/PhiNets, ``configs/*.yaml`` and ``main.py``;
paper Sec. 5 and App. D). Every field is validated in ``__post_init__``; errors say what was expected and what
was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from papercommon.checks import check_finite
from papercommon.config import Config

MODELS = ("simsiam", "phinet", "xphinet", "phinet_aug", "xphinet_aug", "phinet_cos", "xphinet_cos", "byol")
"""Model names: SimSiam (Chen & He 2021), PhiNet, X-PhiNet (EMA "neocortex" target for Sim-2), their ``_aug``
variants whose Sim-2 target view is a third *random* augmentation instead of the centre-cropped original (the
official ``phinet_aug`` / ``phinetmom_aug``, the latter the official default ``--model_name``), the cosine
Sim-2 variants (``PhiNetCos``/``PhiNetMomCos``) and BYOL (Grill et al. 2020)."""

BACKBONES = ("resnet18_cifar", "cnn_small")
"""Backbones: the CIFAR ResNet-18 (3x3 stem, no max-pool; from torchvision's ResNet) and a small CNN for
28x28 and 8x8 grey or colour images."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Config):
    """What to build.

    Args:
        model: one of :data:`MODELS`. Default: the official code's ``--model_name phinetmom_aug``, i.e.
            X-PhiNet with a randomly augmented third view (``"xphinet_aug"``; the paper's text describes the
            centre-cropped original view, ``"xphinet"``).
        backbone: one of :data:`BACKBONES`. CIFAR runs use the CIFAR ResNet-18 (Sec. 5, App. D).
        in_channels: image channels (3 for CIFAR, 1 for MNIST-like data).
        image_size: the square input side the backbone is built for (32 for CIFAR; 28 or 8 for the small CNN).
        cnn_width: channel width of the small CNN's first block (ignored by the ResNet).
        proj_dim: projector output d = dim of z (official code: 2048 for CIFAR).
        proj_hidden: projector hidden width (official code: 2048).
        proj_layers: 2 (Linear-BN-ReLU, Linear-BN; the CIFAR setting) or 3 (the ImageNet setting).
        pred_hidden: bottleneck width of the CA3 predictor h and the CA1 predictor g (official code: 512, i.e. d/4).
        sim2_weight: lambda, the weight of Sim-2 in L = Sim-1 + lambda * Sim-2 (``mse_loss_ratio`` = 1).
        beta: EMA rate of the X-PhiNet "neocortex" encoder (and of BYOL's target), theta_ema <- beta *
            theta_ema + (1 - beta) * theta (``beta_enc`` = 0.99). Must lie in [0, 1].
    """

    model: str = "xphinet_aug"
    backbone: str = "resnet18_cifar"
    in_channels: int = 3
    image_size: int = 32
    cnn_width: int = 32
    proj_dim: int = 2048
    proj_hidden: int = 2048
    proj_layers: int = 2
    pred_hidden: int = 512
    sim2_weight: float = 1.0
    beta: float = 0.99

    def validate(self) -> None:
        _check(self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}")
        _check(self.backbone in BACKBONES, f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        _check(self.in_channels in (1, 3), f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.backbone == "resnet18_cifar":
            _check(self.image_size >= 8 and self.image_size % 8 == 0,
                   f"resnet18_cifar needs image_size a multiple of 8 and >= 8 (it downsamples by 8), "
                   f"got {self.image_size}")
        else:
            _check(self.image_size in (8, 28, 32),
                   f"cnn_small is built for image_size 8, 28 or 32, got {self.image_size}")
        for name in ("cnn_width", "proj_dim", "proj_hidden", "pred_hidden"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, f"{name} must be a positive int, got {v!r}")
        _check(self.proj_layers in (2, 3), f"proj_layers must be 2 or 3, got {self.proj_layers}")
        check_finite("sim2_weight", self.sim2_weight)
        _check(self.sim2_weight >= 0, f"sim2_weight (lambda) must be >= 0, got {self.sim2_weight}")
        check_finite("beta", self.beta)
        _check(0.0 <= self.beta <= 1.0, f"beta (EMA rate) must lie in [0, 1], got {self.beta}")

    @property
    def uses_ema(self) -> bool:
        """Whether the model keeps an EMA copy of the encoder (X-PhiNet, its cosine variant, BYOL)."""
        return self.model in ("xphinet", "xphinet_aug", "xphinet_cos", "byol")

    @property
    def uses_original_view(self) -> bool:
        """Whether the loss needs the third, "original" view (all PhiNet variants)."""
        return self.model in ("phinet", "xphinet", "phinet_aug", "xphinet_aug", "phinet_cos", "xphinet_cos")

    @property
    def augmented_third_view(self) -> bool:
        """Whether the Sim-2 target view is a third random augmentation (the official ``*_aug`` models)."""
        return self.model.endswith("_aug")

    @classmethod
    def small(cls, model: str = "xphinet", *, image_size: int = 8, in_channels: int = 1, **kw: Any) -> ModelConfig:
        """The CPU-scale setting: the small CNN, d = 128, predictors at d/4 (research notes, plan (c))."""
        base = dict(model=model, backbone="cnn_small", in_channels=in_channels, image_size=image_size,
                    cnn_width=32, proj_dim=128, proj_hidden=256, pred_hidden=32)
        base.update(kw)
        return cls(**base)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Config):
    """How to train.

    Args:
        epochs: passes over the data (official CIFAR-10 runs: 800).
        batch_size: images per step (official: 512). BatchNorm needs >= 2.
        base_lr: lr = base_lr * batch_size / 256 (SimSiam convention; official: 0.03).
        momentum: SGD momentum (0.9).
        weight_decay: L2 weight decay of SGD (official default 5e-4; swept in Fig. 6 / Table 1).
        warmup_epochs: linear warm-up from 0 to lr (official: 10), then cosine decay to ``final_lr``.
        final_lr: the lr the cosine reaches at the end (0).
        seed: RNG seed (official: 1234).
        knn_k: neighbours of the cosine-weighted kNN monitor (200).
        knn_temperature: its temperature (0.1).
        probe_epochs: linear-probe epochs (official ``linear_eval``: 100).
        probe_lr: linear-probe SGD lr (30; BN-free, features are frozen).
        probe_batch_size: linear-probe batch size (256).
        eval_every: evaluate the monitors every this many epochs (0: only at the end).
        num_threads: torch CPU threads to use (0: leave torch's default).
        constant_predictor_lr: keep the CA3 predictor h at the peak lr (no warm-up, no cosine decay), as the
            official ``LR_Scheduler(..., constant_predictor_lr=True)`` does (SimSiam Sec. 4.2); False decays it
            with the rest.
    """

    epochs: int = 800
    batch_size: int = 512
    base_lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 10
    final_lr: float = 0.0
    seed: int = 1234
    knn_k: int = 200
    knn_temperature: float = 0.1
    probe_epochs: int = 100
    probe_lr: float = 30.0
    probe_batch_size: int = 256
    eval_every: int = 0
    num_threads: int = 0
    constant_predictor_lr: bool = True

    def validate(self) -> None:
        for name in ("base_lr", "momentum", "weight_decay", "warmup_epochs", "final_lr", "knn_temperature",
                     "probe_lr"):
            check_finite(name, getattr(self, name))
        _check(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be an int >= 1, got {self.epochs!r}")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 2,
               f"batch_size must be an int >= 2 (BatchNorm cannot train on one sample), got {self.batch_size!r}")
        _check(self.base_lr > 0, f"base_lr must be > 0, got {self.base_lr}")
        _check(0.0 <= self.momentum < 1.0, f"momentum must lie in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.warmup_epochs <= self.epochs,
               f"warmup_epochs must lie in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        _check(self.final_lr >= 0, f"final_lr must be >= 0, got {self.final_lr}")
        _check(self.knn_k >= 1, f"knn_k must be >= 1, got {self.knn_k}")
        _check(self.knn_temperature > 0, f"knn_temperature must be > 0, got {self.knn_temperature}")
        _check(self.probe_epochs >= 1, f"probe_epochs must be >= 1, got {self.probe_epochs}")
        _check(self.probe_lr > 0, f"probe_lr must be > 0, got {self.probe_lr}")
        _check(self.probe_batch_size >= 1, f"probe_batch_size must be >= 1, got {self.probe_batch_size}")
        _check(self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}")
        _check(self.num_threads >= 0, f"num_threads must be >= 0, got {self.num_threads}")

    @property
    def lr(self) -> float:
        """The peak learning rate, base_lr * batch_size / 256."""
        return self.base_lr * self.batch_size / 256
