import pytest
import torch
from listdec_fl.data import FederatedData, dirichlet_split, iid_split


def test_from_clients_layout(fed):
    assert fed.n_clients == 10 and fed.in_shape == (1, 4, 4)
    assert fed.train_counts.tolist() == [32] * 10 and fed.valid_counts.tolist() == [8] * 10
    assert fed.valid_x.shape[0] == 80 and (torch.bincount(fed.valid_owner) == 8).all()
    tx, ty, vx, vy = fed.client(3)
    assert tx.shape == (32, 1, 4, 4) and vx.shape == (8, 1, 4, 4)


def test_empty_or_tiny_client_raises():
    X, y = torch.zeros(5, 1, 2, 2), torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match="client 1: expected >= 2 samples"):
        FederatedData.from_clients([(X, y), (X[:0], y[:0])], (X, y))
    with pytest.raises(ValueError, match="at least one client"):
        FederatedData.from_clients([], (X, y))
    with pytest.raises(ValueError, match="disagree"):
        FederatedData.from_clients([(X, y[:3])], (X, y))


def test_iid_split_partitions():
    parts = iid_split(103, 10, torch.Generator().manual_seed(0))
    allidx = torch.cat(parts).sort().values
    assert torch.equal(allidx, torch.arange(103)) and max(p.numel() for p in parts) - min(p.numel() for p in parts) <= 1
    with pytest.raises(ValueError, match="at least as many samples as clients"):
        iid_split(5, 10)


def test_dirichlet_split_is_skewed_and_complete():
    y = torch.arange(10).repeat_interleave(100)
    parts = dirichlet_split(y, 20, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(1000))
    assert min(p.numel() for p in parts) >= 2
    # strong skew: most clients are dominated by one class
    dom = [torch.bincount(y[p], minlength=10).max().item() / p.numel() for p in parts]
    assert sum(d > 0.5 for d in dom) >= 12
    iid = dirichlet_split(y, 5, 1000.0, torch.Generator().manual_seed(0))
    assert max(torch.bincount(y[p], minlength=10).max().item() / p.numel() for p in iid) < 0.2


@pytest.mark.slow  # imports scikit-learn (~30 s here without cached bytecode); the reproduction also loads it
def test_load_federated_digits():
    from listdec_fl.data import load_federated

    d = load_federated("digits", 20, seed=0)
    assert d.n_clients == 20 and d.in_shape == (1, 8, 8) and d.n_classes == 10
    assert int(d.train_counts.sum() + d.valid_counts.sum()) == 1437 and d.test_x.shape[0] == 360
    assert abs(float(d.valid_x.mean())) < 0.2
