import pytest
import torch
from listdec_fl.data import FederatedData


def synthetic_federated(n_clients=10, per_client=40, in_shape=(1, 4, 4), n_classes=4, seed=0, sep=3.0):
    """Linearly separable-ish Gaussian classes, split i.i.d. (no sklearn import: fast tests)."""
    g = torch.Generator().manual_seed(seed)
    D = int(torch.tensor(in_shape).prod())
    means = torch.randn(n_classes, D, generator=g) * sep / D**0.5

    def draw(n):
        y = torch.randint(0, n_classes, (n,), generator=g)
        x = means[y] + torch.randn(n, D, generator=g) * 0.5
        return x.view(n, *in_shape), y

    clients = [draw(per_client) for _ in range(n_clients)]
    return FederatedData.from_clients(clients, draw(200), n_classes=n_classes, generator=g)


@pytest.fixture
def fed():
    return synthetic_federated()
