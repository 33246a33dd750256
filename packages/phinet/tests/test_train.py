import pytest
import torch
from phinet.config import ModelConfig, TrainConfig
from phinet.data import load_images
from phinet.monitor import CollapseMonitor, HistoryLogger, linear_probe
from phinet.train import Trainer


def tiny(model="phinet", **kw):
    return ModelConfig.small(model, image_size=8, cnn_width=8, proj_dim=16, proj_hidden=32, pred_hidden=8), \
        TrainConfig(epochs=1, batch_size=32, warmup_epochs=0, knn_k=10, **kw)


@pytest.fixture(scope="module")
def digits():
    X, y = load_images("digits")
    return X[:128], y[:128]


def test_fit_steps_callbacks_and_evaluate(digits):
    X, y = digits
    cm, hl = CollapseMonitor(), HistoryLogger(every=1)
    tr = Trainer(*tiny("xphinet"), callbacks=[cm, hl], progress=False)
    tr.fit(X, epochs=2)
    assert tr.step == 2 * (128 // 32)
    assert len(cm.history) == tr.step and cm.value > 0 and cm.dim == 16
    assert len(hl.rows) == tr.step and hl.rows[0]["lr"] > 0
    r = tr.evaluate(X, y, X, y, probe=False)
    assert 0 <= r["knn_acc"] <= 1 and r["collapse_std"] > 0


def test_determinism_under_seed(digits):
    X, _ = digits
    losses = []
    for _ in range(2):
        hl = HistoryLogger(every=1)
        Trainer(*tiny("phinet", seed=7), callbacks=[hl], progress=False).fit(X)
        losses.append([r["loss"] for r in hl.rows])
    assert losses[0] == losses[1]
    hl = HistoryLogger(every=1)
    Trainer(*tiny("phinet", seed=8), callbacks=[hl], progress=False).fit(X)
    assert [r["loss"] for r in hl.rows] != losses[0]


def test_online_and_continual(digits):
    X, y = digits
    tr = Trainer(*tiny("simsiam"), progress=False)
    tr.fit_online(X)
    assert tr.step == 4
    rows = tr.fit_continual([X[y < 5], X[y >= 5]], 1, after_task=lambda t: {"t": t})
    assert [r["task"] for r in rows] == [0, 1]


def test_collapse_monitor_stops_training(digits):
    X, _ = digits
    cm = CollapseMonitor(stop_below=10.0)      # threshold above any possible value -> stop at first step
    tr = Trainer(*tiny(), callbacks=[cm], progress=False)
    tr.fit(X)
    assert tr.step == 1


def test_checkpoint_round_trip(tmp_path, digits):
    X, _ = digits
    tr = Trainer(*tiny("xphinet"), progress=False)
    tr.fit(X)
    tr.save(tmp_path / "ck.pt")
    tr2 = Trainer.load(tmp_path / "ck.pt", progress=False)
    assert tr2.step == tr.step
    for (k, a), b in zip(tr.model.state_dict().items(), tr2.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_bad_data_raises(digits):
    X, _ = digits
    tr = Trainer(*tiny(), progress=False)
    with pytest.raises(ValueError, match=r"expected images \(N, 1, 8, 8\)"):
        tr.fit(torch.rand(64, 1, 28, 28))
    with pytest.raises(ValueError, match="at least batch_size=32"):
        tr.fit(X[:10])


def test_linear_probe_learns_separable_features():
    g = torch.Generator().manual_seed(0)
    c = torch.randn(3, 8, generator=g) * 3
    y = torch.arange(150) % 3
    f = c[y] + torch.randn(150, 8, generator=g)
    assert linear_probe(f[:120], y[:120], f[120:], y[120:], epochs=20, lr=1.0, batch_size=32) > 0.9
