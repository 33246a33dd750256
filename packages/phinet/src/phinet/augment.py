"""Three-view augmentation: two augmented views x1, x2 and the "original" view x_ori (paper Sec. 3, App. D).

* :class:`ThreeViewTransform` - the paper's per-image pipeline with torchvision transforms (``PhiNetTransform``
  in the official code): x1, x2 = RandomResizedCrop(scale 0.2-1) + flip + ColorJitter(0.4, 0.4, 0.4, 0.1) w.p.
  0.8 + grayscale w.p. 0.2; x_ori = Resize(8/7 * size) + CenterCrop(size), no colour change. Use it in a
  ``Dataset`` / ``DataLoader``.
* :class:`BatchAugment` - the same families of transforms drawn per image but applied to a whole batch at
  once (one ``affine_grid``/``grid_sample`` for the crops, tensor ops for flips and colour): the fast path for
  small images on a CPU, where per-image Python transforms dominate the step time.

``preset="small"`` is the grey-digit pipeline (no flips or hue: digits are neither mirror- nor colour-
invariant; crops keep 30-100% of the area).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

PRESETS = ("cifar", "small")


@dataclass(frozen=True, kw_only=True)
class AugmentSpec:
    """Parameters shared by both pipelines.

    Args:
        image_size: output side.
        crop_scale: RandomResizedCrop area range (SimSiam CIFAR: (0.2, 1.0)).
        crop_ratio: aspect-ratio range ((3/4, 4/3)).
        flip_p: horizontal-flip probability (0.5; 0 for digits).
        jitter_p: probability of colour jitter (0.8).
        brightness, contrast, saturation, hue: ColorJitter strengths ((0.4, 0.4, 0.4, 0.1)).
        gray_p: grayscale probability (0.2; ignored for 1-channel images).
        ori_resize: the original view is resized to ori_resize * image_size, then centre-cropped (8/7).
    """

    image_size: int
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    gray_p: float = 0.2
    ori_resize: float = 8 / 7

    def __post_init__(self) -> None:
        if self.image_size < 2:
            raise ValueError(f"image_size must be >= 2, got {self.image_size}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        for name in ("flip_p", "jitter_p", "gray_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.ori_resize < 1:
            raise ValueError(f"ori_resize must be >= 1, got {self.ori_resize}")

    @classmethod
    def preset(cls, name: str, image_size: int) -> AugmentSpec:
        """``"cifar"``: the paper's CIFAR views; ``"small"``: digits (no flip, no hue, crop scale 0.3-1)."""
        if name == "cifar":
            return cls(image_size=image_size)
        if name == "small":
            return cls(image_size=image_size, crop_scale=(0.3, 1.0), flip_p=0.0, saturation=0.0, hue=0.0,
                       gray_p=0.0)
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")


class ThreeViewTransform:
    """Per-image torchvision pipeline returning ``(x1, x2, x_ori)`` (the official ``PhiNetTransform``).

    Args:
        spec: an :class:`AugmentSpec` (or use :meth:`preset`).
        normalize: (mean, std) to apply last, e.g. CIFAR's; None leaves [0, 1] images.

    Example:
        >>> t = ThreeViewTransform.preset("cifar", 32)
        >>> x1, x2, x0 = t(torch.rand(3, 32, 32))
    """

    def __init__(self, spec: AugmentSpec, normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None):
        s = spec
        tail = [v2.Normalize(*normalize)] if normalize else []
        jitter = v2.ColorJitter(s.brightness, s.contrast, s.saturation, s.hue)
        self.augment = v2.Compose([
            v2.RandomResizedCrop(s.image_size, scale=s.crop_scale, ratio=s.crop_ratio, antialias=True),
            v2.RandomHorizontalFlip(s.flip_p),
            v2.RandomApply([jitter], p=s.jitter_p),
            v2.RandomGrayscale(s.gray_p),
            *tail,
        ])
        self.original = v2.Compose([
            v2.Resize(int(round(s.image_size * s.ori_resize)), antialias=True),
            v2.CenterCrop(s.image_size),
            *tail,
        ])
        self.spec = spec

    @classmethod
    def preset(cls, name: str, image_size: int) -> ThreeViewTransform:
        norm = (CIFAR_MEAN, CIFAR_STD) if name == "cifar" else None
        return cls(AugmentSpec.preset(name, image_size), norm)

    def __call__(self, img: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if img.dim() != 3:
            raise ValueError(f"ThreeViewTransform takes one (C, H, W) image, got shape {tuple(img.shape)}")
        return self.augment(img), self.augment(img), self.original(img)


def original_view(x: Tensor, image_size: int, ori_resize: float = 8 / 7) -> Tensor:
    """The paper's x_ori for a batch: bilinear resize to round(ori_resize * size), centre crop to size."""
    big = int(round(image_size * ori_resize))
    y = F.interpolate(x, size=(big, big), mode="bilinear", align_corners=False, antialias=True)
    o = (big - image_size) // 2
    return y[..., o:o + image_size, o:o + image_size]


class BatchAugment:
    """Vectorised three-view augmentation of a batch ``(B, C, H, W)`` in [0, 1].

    Each image gets its own crop box, flip, jitter factors and grayscale draw (as :class:`ThreeViewTransform`),
    but the whole batch is warped by one ``grid_sample``.

    Args:
        spec: an :class:`AugmentSpec`.
        normalize: optional (mean, std) applied last.
    """

    def __init__(self, spec: AugmentSpec, normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None):
        self.spec = spec
        self.normalize = normalize

    @classmethod
    def preset(cls, name: str, image_size: int) -> BatchAugment:
        norm = (CIFAR_MEAN, CIFAR_STD) if name == "cifar" else None
        return cls(AugmentSpec.preset(name, image_size), norm)

    def _norm(self, x: Tensor) -> Tensor:
        if self.normalize is None:
            return x
        mean = torch.tensor(self.normalize[0], device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.normalize[1], device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def view(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One augmented view of every image of the batch."""
        s, B, dev = self.spec, x.shape[0], x.device
        u = lambda *shape: torch.rand(*shape, generator=generator, device="cpu").to(dev)
        # Random resized crop: area fraction a and aspect ratio r (log-uniform) -> half-sizes in [-1, 1] coords.
        a = s.crop_scale[0] + (s.crop_scale[1] - s.crop_scale[0]) * u(B)
        lr0, lr1 = math.log(s.crop_ratio[0]), math.log(s.crop_ratio[1])
        r = torch.exp(lr0 + (lr1 - lr0) * u(B))
        sw = torch.sqrt(a * r).clamp(max=1.0)                          # width fraction
        sh = torch.sqrt(a / r).clamp(max=1.0)                          # height fraction
        cx = (1 - sw) * (2 * u(B) - 1)                                 # centre, keeps the box inside
        cy = (1 - sh) * (2 * u(B) - 1)
        flip = torch.where(u(B) < s.flip_p, -1.0, 1.0)
        theta = torch.zeros(B, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 0, 2] = sw * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = sh, cy
        grid = F.affine_grid(theta, [B, x.shape[1], s.image_size, s.image_size], align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # Colour jitter with probability jitter_p: brightness, contrast, saturation factors in [1-s, 1+s].
        on = (u(B) < s.jitter_p).float().view(B, 1, 1, 1)
        fac = lambda m: (1 + m * (2 * u(B) - 1)).view(B, 1, 1, 1)
        if s.brightness:
            y = y * (1 + on * (fac(s.brightness) - 1))
        if s.contrast:
            mean = y.mean(dim=(1, 2, 3), keepdim=True)
            y = mean + (y - mean) * (1 + on * (fac(s.contrast) - 1))
        if x.shape[1] == 3:
            gray = (0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]).unsqueeze(1)
            if s.saturation:
                y = gray + (y - gray) * (1 + on * (fac(s.saturation) - 1))
            if s.hue:  # rotate chroma around the grey axis (a linear approximation of a hue shift)
                ang = (on.view(B) * s.hue * (2 * u(B) - 1) * 2 * math.pi).view(B, 1, 1, 1)
                c, sn = torch.cos(ang), torch.sin(ang)
                k = 1 / math.sqrt(3)
                d = y - y.mean(1, keepdim=True)
                cross = torch.stack([d[:, 1] - d[:, 2], d[:, 2] - d[:, 0], d[:, 0] - d[:, 1]], 1) * k
                y = y.mean(1, keepdim=True) + d * c + cross * sn
            g = (u(B) < s.gray_p).float().view(B, 1, 1, 1)
            gray = (0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]).unsqueeze(1)
            y = g * gray.expand_as(y) + (1 - g) * y
        return self._norm(y.clamp(0, 1))

    def original(self, x: Tensor) -> Tensor:
        """The deterministic original view x_ori (resize by 8/7, centre crop)."""
        return self._norm(original_view(x, self.spec.image_size, self.spec.ori_resize))

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        if x.dim() != 4:
            raise ValueError(f"BatchAugment takes a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        return self.view(x, generator), self.view(x, generator), self.original(x)
