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


def _tiny_trainer(model="phinet", **kw):
    from phinet import ModelConfig, TrainConfig, Trainer

    cfg = ModelConfig.small(model, image_size=8, cnn_width=8, proj_dim=16, proj_hidden=32, pred_hidden=8)
    return Trainer(cfg, TrainConfig(epochs=2, batch_size=16, warmup_epochs=1, knn_k=5, **kw), progress=False)


def test_constant_predictor_lr_keeps_h_at_the_peak():
    """Official LR_Scheduler(constant_predictor_lr=True): the 'predictor' group (h only) stays at base lr."""
    import torch

    tr = _tiny_trainer()
    names = [g["name"] for g in tr.optimizer.param_groups]
    assert names == ["base", "predictor"]
    assert {id(p) for p in tr.optimizer.param_groups[1]["params"]} == {id(p) for p in tr.model.h.parameters()}
    tr.train_step(torch.rand(16, 1, 8, 8), lr=0.001)
    assert [g["lr"] for g in tr.optimizer.param_groups] == [0.001, tr.cfg.lr]
    tr2 = _tiny_trainer(constant_predictor_lr=False)
    tr2.train_step(torch.rand(16, 1, 8, 8), lr=0.001)
    assert [g["lr"] for g in tr2.optimizer.param_groups] == [0.001, 0.001]


def test_aug_models_take_a_random_third_view(monkeypatch):
    import torch

    seen = {}
    for model in ("xphinet", "xphinet_aug"):
        tr = _tiny_trainer(model)
        orig = tr.model.forward

        def spy(x1, x2, x0, orig=orig, model=model):
            seen[model] = x0.clone()
            return orig(x1, x2, x0)

        monkeypatch.setattr(tr.model, "forward", spy)
        x = torch.rand(16, 1, 8, 8)
        tr.train_step(x, lr=0.01)
        if model == "xphinet":
            torch.testing.assert_close(seen[model], tr.augment.original(x))
        else:
            assert not torch.allclose(seen[model], tr.augment.original(x))


def test_uint8_and_nonfinite_images_are_rejected():
    import pytest
    import torch

    tr = _tiny_trainer()
    with pytest.raises(TypeError, match=r"images: expected floating-point pixels in \[0, 1\], got dtype torch.uint8"):
        tr.fit(torch.zeros(32, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="images: expected finite pixel values"):
        tr.fit(torch.full((32, 1, 8, 8), float("nan")))


def test_load_is_weights_only_and_names_foreign_files(tmp_path):
    import pytest
    import torch
    from phinet import Trainer

    tr = _tiny_trainer()
    tr.fit(torch.rand(32, 1, 8, 8))
    tr.save(tmp_path / "ok.pt")
    back = Trainer.load(tmp_path / "ok.pt", progress=False)
    assert back.step == tr.step
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"foreign.pt is not a phinet checkpoint: expected keys"):
        Trainer.load(tmp_path / "foreign.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt is not a readable phinet checkpoint"):
        Trainer.load(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        Trainer.load(tmp_path / "missing.pt")
