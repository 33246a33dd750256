"""Federated data: per-client train and validation splits (padded, for vectorised training) and a test set.

Images come from ``papercommon.data.image_dataset`` (digits, mnist5k and Fashion-MNIST offline; CIFAR-10
when it can be downloaded), normalised by the training set's per-channel mean and std (the official code
z-scores per feature; per channel keeps pixels that are constant in the training set finite), then split
i.i.d. or by a Dirichlet label split over clients. Each client holds out ``valid_fraction`` of its data for
voting (official ``read_user_data_vad`` with ``--valid_rate 0.2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class FederatedData:
    """Client data laid out for batched training.

    Attributes:
        train_x: (n, N_max, *in_shape) padded per-client training inputs.
        train_y: (n, N_max) padded labels (padding is never sampled).
        train_counts: (n,) training samples per client.
        valid_x, valid_y: (N_v, *in_shape), (N_v,) all clients' validation samples, concatenated.
        valid_owner: (N_v,) the client each validation sample belongs to.
        valid_counts: (n,) validation samples per client.
        test_x, test_y: the test set.
        n_classes: number of classes.
    """

    train_x: Tensor
    train_y: Tensor
    train_counts: Tensor
    valid_x: Tensor
    valid_y: Tensor
    valid_owner: Tensor
    valid_counts: Tensor
    test_x: Tensor
    test_y: Tensor
    n_classes: int

    def to(self, device: str | torch.device) -> FederatedData:
        """A copy with every tensor on ``device`` (self if already there)."""
        if self.train_x.device == torch.device(device):
            return self
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return FederatedData(**moved)

    @property
    def n_clients(self) -> int:
        return self.train_x.shape[0]

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.test_x.shape[1:])

    def client(self, i: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Client i's (train_x, train_y, valid_x, valid_y), unpadded."""
        n = int(self.train_counts[i])
        m = self.valid_owner == i
        return self.train_x[i, :n], self.train_y[i, :n], self.valid_x[m], self.valid_y[m]

    def hold_out_test(self, n: int, seed: int = 0) -> tuple[FederatedData, tuple[Tensor, Tensor]]:
        """Move ``n`` random test samples into a small trusted validation set held by the server.

        Returns ``(data without those test samples, (trusted_x, trusted_y))``: selection rules that use the
        trusted set are then scored on test samples they never saw.
        """
        N = int(self.test_y.shape[0])
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n < N:
            raise ValueError(f"trusted set size: expected an int in [1, {N}) (test samples {N}), given {n!r}")
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(20_011 + seed)).to(self.test_y.device)
        keep, held = perm[n:], perm[:n]
        rest = FederatedData(**{**self.__dict__, "test_x": self.test_x[keep], "test_y": self.test_y[keep]})
        return rest, (self.test_x[held], self.test_y[held])

    @classmethod
    def from_clients(cls, clients: Sequence[tuple[Tensor, Tensor]], test: tuple[Tensor, Tensor], *,
                     n_classes: int | None = None, valid_fraction: float = 0.2,
                     generator: torch.Generator | None = None) -> FederatedData:
        """Build from each client's ``(X, y)``: every client's data is shuffled and ``valid_fraction`` of
        it (at least 1 sample) held out for voting.

        Raises:
            ValueError: no clients, a client with fewer than 2 samples, mismatched shapes.
        """
        if len(clients) == 0:
            raise ValueError("clients: expected at least one client dataset, given none")
        if not 0.0 < valid_fraction < 1.0:
            raise ValueError(f"valid_fraction: expected 0 < valid_fraction < 1, given {valid_fraction}")
        shape = tuple(clients[0][0].shape[1:])
        trains, valids = [], []
        for i, (X, y) in enumerate(clients):
            if X.shape[0] != y.shape[0]:
                raise ValueError(f"client {i}: X and y disagree on the number of samples ({X.shape[0]} vs {y.shape[0]})")
            if tuple(X.shape[1:]) != shape:
                raise ValueError(f"client {i}: expected inputs of shape {shape}, given {tuple(X.shape[1:])}")
            if X.shape[0] < 2:
                raise ValueError(f"client {i}: expected >= 2 samples (>= 1 to train on and >= 1 to vote with), "
                                 f"given {X.shape[0]} (empty or near-empty client dataset)")
            perm = torch.randperm(X.shape[0], generator=generator)
            n_val = min(max(1, round(valid_fraction * X.shape[0])), X.shape[0] - 1)
            valids.append((X[perm[:n_val]], y[perm[:n_val]]))
            trains.append((X[perm[n_val:]], y[perm[n_val:]]))
        counts = torch.tensor([t[0].shape[0] for t in trains])
        n_max = int(counts.max())
        tx = torch.zeros(len(trains), n_max, *shape)
        ty = torch.zeros(len(trains), n_max, dtype=torch.long)
        for i, (X, y) in enumerate(trains):
            tx[i, : X.shape[0]] = X
            ty[i, : y.shape[0]] = y
        C = n_classes if n_classes is not None else int(max(int(ty.max()), int(test[1].max()))) + 1
        return cls(
            train_x=tx, train_y=ty, train_counts=counts,
            valid_x=torch.cat([v[0] for v in valids]), valid_y=torch.cat([v[1] for v in valids]),
            valid_owner=torch.cat([torch.full((v[0].shape[0],), i) for i, v in enumerate(valids)]),
            valid_counts=torch.tensor([v[0].shape[0] for v in valids]),
            test_x=test[0], test_y=test[1], n_classes=C,
        )


def iid_split(n_samples: int, n_clients: int, generator: torch.Generator | None = None) -> list[Tensor]:
    """Shuffle and cut into n nearly equal parts."""
    if n_samples < n_clients:
        raise ValueError(f"iid split: expected at least as many samples as clients ({n_clients}), given {n_samples}")
    return list(torch.randperm(n_samples, generator=generator).tensor_split(n_clients))


def dirichlet_split(y: Tensor, n_clients: int, beta: float, generator: torch.Generator | None = None,
                    min_size: int = 2, max_tries: int = 100) -> list[Tensor]:
    """Label-skewed split: each class's samples are shared among clients by proportions ~ Dir(beta).

    Redraws until every client has at least ``min_size`` samples (raises after ``max_tries``).
    """
    import numpy as np

    C = int(y.max()) + 1
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else None
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        parts: list[list[Tensor]] = [[] for _ in range(n_clients)]
        for c in range(C):
            idx = (y == c).nonzero().squeeze(1)
            idx = idx[torch.randperm(idx.numel(), generator=generator)]
            p = torch.from_numpy(rng.dirichlet(np.full(n_clients, float(beta))))
            cuts = (p.cumsum(0) * idx.numel()).round().long()[:-1]
            for i, chunk in enumerate(torch.tensor_split(idx, cuts)):
                parts[i].append(chunk)
        out = [torch.cat(p) for p in parts]
        if min(o.numel() for o in out) >= min_size:
            return out
    raise ValueError(f"dirichlet split: could not give every one of {n_clients} clients >= {min_size} samples "
                     f"with beta={beta} in {max_tries} draws; use fewer clients or a larger beta")


def load_federated(dataset: str, n_clients: int, *, partition: str = "iid", dirichlet_alpha: float = 0.1,
                   valid_fraction: float = 0.2, seed: int = 0, max_train: int | None = None) -> FederatedData:
    """Load ``papercommon.data.image_dataset(dataset)`` and split it over ``n_clients``.

    Args:
        dataset: "digits", "mnist5k", "fashion-mnist", "cifar10".
        n_clients: clients.
        partition: "iid" or "dirichlet".
        dirichlet_alpha: Dirichlet concentration (paper: 0.1 for the heterogeneous setting).
        valid_fraction: per-client validation share.
        seed: seeds the split.
        max_train: optional cap on the training samples (random subset).
    """
    from papercommon.data import image_dataset

    Xtr, ytr = image_dataset(dataset, "train")
    Xte, yte = image_dataset(dataset, "test")
    g = torch.Generator().manual_seed(seed)
    if max_train is not None and max_train < Xtr.shape[0]:
        keep = torch.randperm(Xtr.shape[0], generator=g)[:max_train]
        Xtr, ytr = Xtr[keep], ytr[keep]
    mean = Xtr.mean(dim=(0, 2, 3), keepdim=True)
    std = Xtr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    if partition == "iid":
        parts = iid_split(Xtr.shape[0], n_clients, g)
    elif partition == "dirichlet":
        parts = dirichlet_split(ytr, n_clients, dirichlet_alpha, g)
    else:
        raise ValueError(f"partition: expected 'iid' or 'dirichlet', given {partition!r}")
    n_classes = int(max(int(ytr.max()), int(yte.max()))) + 1
    return FederatedData.from_clients([(Xtr[p], ytr[p]) for p in parts], (Xte, yte), n_classes=n_classes,
                                      valid_fraction=valid_fraction, generator=g)
