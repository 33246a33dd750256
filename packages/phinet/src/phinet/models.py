"""SimSiam, PhiNet, X-PhiNet (and the cosine variants) and BYOL.

Each model maps a batch of views to a :class:`SSLOutput` (the loss and its parts). Read top-down:
heads -> the base class -> SimSiam -> PhiNet -> X-PhiNet -> BYOL -> :func:`build_model`.

Example:
    >>> import torch
    >>> from phinet import ModelConfig, build_model
    >>> model = build_model(ModelConfig.small("xphinet", image_size=8))
    >>> x1, x2, x0 = torch.rand(3, 16, 1, 8, 8)
    >>> out = model(x1, x2, x0)
    >>> out.loss.backward(); model.update_target()
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from phinet import functional as PF
from phinet.backbones import build_backbone
from phinet.config import ModelConfig


def projector(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """SimSiam's projector: (Linear-BN-ReLU) x (layers - 1), then Linear-BN (CIFAR: 2 layers, 2048-d)."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        d = hidden
    mods += [nn.Linear(d, out_dim, bias=False), nn.BatchNorm1d(out_dim)]
    return nn.Sequential(*mods)


def predictor(dim: int, hidden: int) -> nn.Sequential:
    """The bottleneck predictor Linear(d->h)-BN-ReLU-Linear(h->d); used for both h (CA3) and g (CA1)."""
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim))


@dataclass
class SSLOutput:
    """What a forward pass returns.

    Attributes:
        loss: the scalar to minimise.
        sim1: the view-alignment term (SimSiam's loss; BYOL's loss for BYOL).
        sim2: the CA1 term (0 for SimSiam and BYOL).
        z1: (B, d) projection of view 1, detached (for the collapse gauge).
    """

    loss: Tensor
    sim1: Tensor
    sim2: Tensor
    z1: Tensor


class SSLModel(nn.Module):
    """Base: an encoder f = projector . backbone, ``embed`` for monitors, ``update_target`` for EMA models."""

    needs_original_view = False

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, cfg.in_channels, cfg.image_size, cfg.cnn_width)
        self.projector = projector(self.backbone.out_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers)
        self.encoder = nn.Sequential(self.backbone, self.projector)

    def _check_views(self, x1: Tensor, x2: Tensor, x_ori: Tensor | None) -> None:
        if x1.shape != x2.shape:
            raise ValueError(f"the two views must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
        if self.needs_original_view:
            if x_ori is None:
                raise ValueError(f"{type(self).__name__} needs the original view x_ori (three views), got None")
            if x_ori.shape != x1.shape:
                raise ValueError(f"x_ori must have the views' shape {tuple(x1.shape)}, got {tuple(x_ori.shape)}")

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """Backbone features (B, feature_dim), the representation that kNN and the linear probe read."""
        return self.backbone(x)

    def update_target(self) -> None:
        """EMA step of the slow encoder after the optimiser step (no-op for models without one)."""

    def forward(self, x1: Tensor, x2: Tensor, x_ori: Tensor | None = None) -> SSLOutput:  # pragma: no cover
        raise NotImplementedError


class SimSiam(SSLModel):
    """SimSiam (Chen & He 2021): L = 1/2 D(h(z1), sg z2) + 1/2 D(h(z2), sg z1)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.h = predictor(cfg.proj_dim, cfg.pred_hidden)

    def forward(self, x1: Tensor, x2: Tensor, x_ori: Tensor | None = None) -> SSLOutput:
        self._check_views(x1, x2, x_ori)
        z1, z2 = self.encoder(x1), self.encoder(x2)                     # (B, d)
        p1, p2 = self.h(z1), self.h(z2)                                 # (B, d)
        s1 = PF.simsiam_loss(p1, p2, z1, z2)
        return SSLOutput(s1, s1.detach(), torch.zeros(()), z1.detach())


class PhiNet(SimSiam):
    """PhiNet: SimSiam plus the CA1 predictor g that predicts sg f(x_ori) from h(z_i) (paper Eq. 1-2, Fig. 1).

    L = Sim-1 + lambda * Sim-2 with Sim-2 = 1/2 M(g(p1), sg z_ori) + 1/2 M(g(p2), sg z_ori), M = MSE
    (``sim2="mse"``) or negative cosine (``sim2="cos"``, the official ``PhiNetCos``).
    """

    needs_original_view = True

    def __init__(self, cfg: ModelConfig, sim2: str = "mse") -> None:
        super().__init__(cfg)
        if sim2 not in ("mse", "cos"):
            raise ValueError(f"sim2 must be 'mse' or 'cos', got {sim2!r}")
        self.sim2_kind = sim2
        self.g = predictor(cfg.proj_dim, cfg.pred_hidden)

    def target_original(self, x_ori: Tensor) -> Tensor:
        """sg f(x_ori): the same encoder, without a graph (the stop-gradient)."""
        with torch.no_grad():
            return self.encoder(x_ori)

    def forward(self, x1: Tensor, x2: Tensor, x_ori: Tensor | None = None) -> SSLOutput:
        self._check_views(x1, x2, x_ori)
        z1, z2 = self.encoder(x1), self.encoder(x2)                     # (B, d)
        p1, p2 = self.h(z1), self.h(z2)                                 # CA3, (B, d)
        y1, y2 = self.g(p1), self.g(p2)                                 # CA1, (B, d)
        z0 = self.target_original(x_ori)                                # (B, d), no grad
        loss, s1, s2 = PF.phinet_loss(p1, p2, z1, z2, y1, y2, z0, self.cfg.sim2_weight, self.sim2_kind)
        return SSLOutput(loss, s1.detach(), s2.detach(), z1.detach())


class XPhiNet(PhiNet):
    """X-PhiNet: PhiNet whose Sim-2 target comes from an EMA copy of the encoder, the slow "neocortex".

    theta_ema <- beta theta_ema + (1 - beta) theta after every step (``beta_enc`` = 0.99; paper Sec. 3.2).
    """

    def __init__(self, cfg: ModelConfig, sim2: str = "mse") -> None:
        super().__init__(cfg, sim2)
        self.encoder_ema = copy.deepcopy(self.encoder)
        self.encoder_ema.requires_grad_(False)

    def target_original(self, x_ori: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encoder_ema(x_ori)

    @torch.no_grad()
    def update_target(self) -> None:
        ema_update_module_(self.encoder_ema, self.encoder, self.cfg.beta)


class BYOL(SSLModel):
    """BYOL (Grill et al. 2020): predict an EMA target network's projection of the other view.

    L = 1/2 (2 - 2cos(h(z1), sg t2)) + 1/2 (2 - 2cos(h(z2), sg t1)), t_i = f_ema(x_i). The EMA rate is held
    at ``cfg.beta`` (BYOL's cosine increase of beta to 1 is not used, as in the SimSiam codebase).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.h = predictor(cfg.proj_dim, cfg.pred_hidden)
        self.encoder_ema = copy.deepcopy(self.encoder)
        self.encoder_ema.requires_grad_(False)

    def forward(self, x1: Tensor, x2: Tensor, x_ori: Tensor | None = None) -> SSLOutput:
        self._check_views(x1, x2, x_ori)
        z1, z2 = self.encoder(x1), self.encoder(x2)
        p1, p2 = self.h(z1), self.h(z2)
        with torch.no_grad():
            t1, t2 = self.encoder_ema(x1), self.encoder_ema(x2)
        loss = PF.byol_loss(p1, p2, t1, t2)
        return SSLOutput(loss, loss.detach(), torch.zeros(()), z1.detach())

    @torch.no_grad()
    def update_target(self) -> None:
        ema_update_module_(self.encoder_ema, self.encoder, self.cfg.beta)


@torch.no_grad()
def ema_update_module_(target: nn.Module, online: nn.Module, beta: float) -> None:
    """EMA of every parameter and floating buffer (BN running statistics); integer buffers are copied."""
    PF.ema_update_(list(target.parameters()), list(online.parameters()), beta)
    tb, ob = list(target.buffers()), list(online.buffers())
    fl = [(t, o) for t, o in zip(tb, ob, strict=True) if t.is_floating_point()]
    if fl:
        PF.ema_update_([t for t, _ in fl], [o for _, o in fl], beta)
    for t, o in zip(tb, ob, strict=True):
        if not t.is_floating_point():
            t.copy_(o)


def build_model(cfg: ModelConfig) -> SSLModel:
    """The model that ``cfg.model`` names (see :data:`phinet.config.MODELS`). The ``_aug`` models are the same
    networks; the :class:`~phinet.train.Trainer` feeds them a random third view as the Sim-2 target."""
    return {
        "simsiam": lambda: SimSiam(cfg),
        "phinet": lambda: PhiNet(cfg, "mse"),
        "phinet_aug": lambda: PhiNet(cfg, "mse"),
        "xphinet_aug": lambda: XPhiNet(cfg, "mse"),
        "phinet_cos": lambda: PhiNet(cfg, "cos"),
        "xphinet": lambda: XPhiNet(cfg, "mse"),
        "xphinet_cos": lambda: XPhiNet(cfg, "cos"),
        "byol": lambda: BYOL(cfg),
    }[cfg.model]()
