"""Models with flat parameter vectors, batched over many models at once.

Every model in the simulator is a flat vector ``theta`` of length ``d``; a stack of them ``(R, d)`` is
R independent models (R = runs x clients). Each model class offers

* ``forward(params (R, d), x (R, B, *in_shape)) -> logits (R, B, C)``,
* ``loss_and_grad(params, x, y) -> (loss (R,), grad (R, d))`` for the mean cross-entropy,
* ``module()`` / ``flatten(module)`` / ``load(module, flat)`` to go to and from a plain ``nn.Module`` (the
  reference path and the Flower clients use it).

``LogisticRegression`` (the paper's convex model, official ``Mclr_CrossEntropy_Femnist``) has a closed-form
gradient; ``SmallCNN`` uses ``torch.func.vmap(grad(...))`` over ``functional_call``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap


class FlatModel:
    """Base class: a ``nn.Module`` template whose parameters live in one flat vector."""

    def __init__(self, template: nn.Module, in_shape: tuple[int, ...], n_classes: int) -> None:
        self.template = template
        self.in_shape = tuple(in_shape)
        self.n_classes = n_classes
        self.names = [n for n, _ in template.named_parameters()]
        self.shapes = [p.shape for _, p in template.named_parameters()]
        sizes = [p.numel() for _, p in template.named_parameters()]
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        #: (start, end) of each parameter tensor in the flat vector (per-tensor statistics, e.g. Gauss attack)
        self.segments = [(offsets[i], offsets[i + 1]) for i in range(len(sizes))]
        self.dim = offsets[-1]

    # -- conversion ------------------------------------------------------------------------------------
    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """(d,) -> {name: tensor}; views, so it also works under vmap."""
        return {n: flat[a:b].view(s) for n, s, (a, b) in zip(self.names, self.shapes, self.segments)}

    def module(self, flat: Tensor | None = None) -> nn.Module:
        """A fresh ``nn.Module`` (a deep copy of the template), loaded with ``flat`` if given."""
        import copy

        m = copy.deepcopy(self.template)
        if flat is not None:
            self.load(m, flat)
        return m

    def flatten(self, module: nn.Module) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()])

    def load(self, module: nn.Module, flat: Tensor) -> None:
        if flat.shape != (self.dim,):
            raise ValueError(f"flat parameters: expected shape ({self.dim},), given {tuple(flat.shape)}")
        with torch.no_grad():
            for p, (a, b) in zip(module.parameters(), self.segments):
                p.copy_(flat[a:b].view_as(p))

    def init(self, n: int, generator: torch.Generator) -> Tensor:
        """n independent initialisations (PyTorch's default layer init), (n, d)."""
        out = torch.empty(n, self.dim)
        for i in range(n):
            out[i] = self._init_one(generator)
        return out

    def _init_one(self, generator: torch.Generator) -> Tensor:
        parts = []
        for name, shape in zip(self.names, self.shapes):
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else None
            if fan_in is None:  # bias: fan_in of the matching weight
                w_shape = self.shapes[self.names.index(name.replace("bias", "weight"))]
                fan_in = math.prod(w_shape[1:])
            bound = 1.0 / math.sqrt(fan_in)
            parts.append((torch.rand(math.prod(shape), generator=generator) * 2 - 1) * bound)
        return torch.cat(parts)

    # -- batched math ------------------------------------------------------------------------------------
    def forward(self, params: Tensor, x: Tensor) -> Tensor:
        """params (R, d), x (R, B, *in_shape) -> logits (R, B, C)."""
        def one(p: Tensor, xb: Tensor) -> Tensor:
            return functional_call(self.template, self.unflatten(p), (xb,))

        return vmap(one)(params, x)

    def loss_and_grad(self, params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy per model and its gradient: (R,), (R, d)."""
        def loss(p: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
            return F.cross_entropy(functional_call(self.template, self.unflatten(p), (xb,)), yb)

        g, v = vmap(grad_and_value(loss))(params, x, y)
        return v, g

    def logits_shared(self, params: Tensor, x: Tensor, chunk: int = 512) -> Tensor:
        """Many models on the same inputs: params (M, d), x (N, *in_shape) -> logits (M, N, C)."""
        outs = []
        for s in range(0, x.shape[0], chunk):
            xb = x[s:s + chunk]
            outs.append(vmap(lambda p, xb=xb: functional_call(self.template, self.unflatten(p), (xb,)))(params))
        return torch.cat(outs, dim=1)


def _log_softmax(z: Tensor) -> Tensor:
    """log-softmax over the last dim; several times faster than ``Tensor.log_softmax`` for few classes on
    the CPU builds we measured."""
    z = z - z.amax(-1, keepdim=True)
    return z - z.exp().sum(-1, keepdim=True).log()


class _Linear(nn.Module):
    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))


class LogisticRegression(FlatModel):
    """Multinomial logistic regression on flattened inputs (the paper's convex model).

    Flat layout: ``[W (C*D, row-major), b (C)]``.
    """

    def __init__(self, in_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__(_Linear(math.prod(in_shape), n_classes), in_shape, n_classes)
        self.in_dim = math.prod(in_shape)

    def _wb(self, params: Tensor) -> tuple[Tensor, Tensor]:
        C, D = self.n_classes, self.in_dim
        return params[..., : C * D].unflatten(-1, (C, D)), params[..., C * D:]

    def forward(self, params: Tensor, x: Tensor) -> Tensor:
        W, b = self._wb(params)  # (R, C, D), (R, C)
        return torch.baddbmm(b.unsqueeze(1), x.flatten(2), W.transpose(1, 2))  # (R, B, C)

    def loss_and_grad(self, params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        xf = x.flatten(2)  # (R, B, D)
        logits = self.forward(params, x)
        logp = _log_softmax(logits)
        loss = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)  # (R,)
        G = logp.exp()
        G.scatter_add_(-1, y.unsqueeze(-1), -torch.ones_like(y, dtype=G.dtype).unsqueeze(-1))
        G = G / x.shape[1]  # d(mean CE)/d logits, (R, B, C)
        gW = torch.bmm(G.transpose(1, 2), xf)  # (R, C, D)
        return loss, torch.cat([gW.flatten(1), G.sum(1)], dim=1)

    def logits_shared(self, params: Tensor, x: Tensor, chunk: int = 4096) -> Tensor:
        W, b = self._wb(params)  # (M, C, D), (M, C)
        return torch.einsum("nd,mcd->mnc", x.flatten(1), W) + b.unsqueeze(1)


class _CNN(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], n_classes: int, width: int) -> None:
        super().__init__()
        c, h, w = in_shape
        self.conv1 = nn.Conv2d(c, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * (h // 4) * (w // 4), 64)
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, w, H/2, W/2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 2w, H/4, W/4)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class SmallCNN(FlatModel):
    """Two conv + max-pool blocks and a two-layer head (the non-convex model; a smaller cousin of the
    official ``CNN_Femnist`` / ``CNNCifar2``)."""

    def __init__(self, in_shape: tuple[int, ...], n_classes: int, width: int = 16) -> None:
        if len(in_shape) != 3 or in_shape[1] < 4 or in_shape[2] < 4:
            raise ValueError(f"SmallCNN: expected in_shape (C, H, W) with H, W >= 4, given {in_shape}")
        super().__init__(_CNN(tuple(in_shape), n_classes, width), in_shape, n_classes)


def build_model(name: str, in_shape: tuple[int, ...], n_classes: int) -> FlatModel:
    """``"logreg"`` or ``"cnn"``."""
    if name == "logreg":
        return LogisticRegression(in_shape, n_classes)
    if name == "cnn":
        return SmallCNN(in_shape, n_classes)
    raise ValueError(f"model: expected 'logreg' or 'cnn', given {name!r}")
