"""Backbones: the CIFAR ResNet-18 (from torchvision's ResNet) and a small CNN for 28x28 / 8x8 images.

Both check their input: an image of the wrong size or channel count, or a training batch of one (which
BatchNorm cannot normalise), raises a ValueError that says what was expected and what was given.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import resnet18


class _CheckedBackbone(nn.Module):
    in_channels: int
    image_size: int
    out_dim: int

    def check_input(self, x: Tensor) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects images of shape (B, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}), got {tuple(x.shape)}")
        if self.training and x.shape[0] < 2:
            raise ValueError(f"BatchNorm cannot train on a batch of {x.shape[0]} image(s); use batch size >= 2 "
                             "(or call .eval())")


class CifarResNet18(_CheckedBackbone):
    """torchvision's ResNet-18 with the CIFAR stem: a 3x3 stride-1 first conv, no max-pool, no fc (512-d out).

    Args:
        in_channels: 3 for CIFAR.
        image_size: input side; a multiple of 8 (the three stride-2 stages downsample by 8).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        if image_size < 8 or image_size % 8:
            raise ValueError(f"CifarResNet18 needs an image side that is a multiple of 8 and >= 8, got {image_size}")
        self.in_channels, self.image_size, self.out_dim = in_channels, image_size, 512
        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.net(x)                                                    # (B, 512)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(_CheckedBackbone):
    """A VGG-style CNN for small images: [w, w] -> pool -> [2w, 2w] -> pool -> [4w] -> global average pool.

    28x28 -> 14 -> 7 -> 1; 8x8 -> 4 -> 2 -> 1. Output dim 4w.

    Args:
        in_channels: 1 (MNIST-like) or 3.
        image_size: 8, 28 or 32.
        width: w.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 32) -> None:
        super().__init__()
        if image_size not in (8, 28, 32):
            raise ValueError(f"SmallCNN is built for 8x8, 28x28 or 32x32 images, got image_size={image_size}")
        self.in_channels, self.image_size, self.out_dim = in_channels, image_size, 4 * width
        w = width
        self.features = nn.Sequential(
            _block(in_channels, w), _block(w, w), nn.MaxPool2d(2),
            _block(w, 2 * w), _block(2 * w, 2 * w), nn.MaxPool2d(2),
            _block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.features(x)                                               # (B, 4w)


def build_backbone(name: str, in_channels: int, image_size: int, width: int = 32) -> _CheckedBackbone:
    """``"resnet18_cifar"`` -> :class:`CifarResNet18`; ``"cnn_small"`` -> :class:`SmallCNN`."""
    if name == "resnet18_cifar":
        return CifarResNet18(in_channels, image_size)
    if name == "cnn_small":
        return SmallCNN(in_channels, image_size, width)
    raise ValueError(f"backbone must be 'resnet18_cifar' or 'cnn_small', got {name!r}")


@torch.no_grad()
def feature_dim(backbone: nn.Module) -> int:
    """The backbone's output width."""
    return int(backbone.out_dim)
