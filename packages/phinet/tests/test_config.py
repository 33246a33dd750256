import pytest
from phinet.config import ModelConfig, TrainConfig


def test_defaults_are_the_official_codes():
    m, t = ModelConfig(), TrainConfig()
    # official main.py: --model_name phinetmom_aug (X-PhiNet, random third view), constant predictor lr
    assert (m.model, m.backbone, m.proj_dim, m.proj_hidden, m.pred_hidden, m.proj_layers) == (
        "xphinet_aug", "resnet18_cifar", 2048, 2048, 512, 2)
    assert m.augmented_third_view and m.uses_ema and t.constant_predictor_lr
    assert m.beta == 0.99 and m.sim2_weight == 1.0
    assert (t.epochs, t.batch_size, t.base_lr, t.momentum, t.weight_decay, t.warmup_epochs, t.seed) == (
        800, 512, 0.03, 0.9, 5e-4, 10, 1234)
    assert t.lr == pytest.approx(0.06)
    assert (t.knn_k, t.knn_temperature, t.probe_lr, t.probe_epochs) == (200, 0.1, 30.0, 100)


@pytest.mark.parametrize("beta", [-0.1, 1.01, 2.0])
def test_beta_outside_unit_interval_raises(beta):
    with pytest.raises(ValueError, match=r"beta .*\[0, 1\].*got"):
        ModelConfig(beta=beta)


@pytest.mark.parametrize("bs", [0, 1])
def test_batch_size_batchnorm_cannot_train_on_raises(bs):
    with pytest.raises(ValueError, match="BatchNorm"):
        TrainConfig(batch_size=bs)


@pytest.mark.parametrize("kw", [dict(model="simclr"), dict(backbone="vit"), dict(image_size=30),
                                dict(backbone="cnn_small", image_size=16), dict(proj_layers=4),
                                dict(sim2_weight=-1.0), dict(in_channels=2)])
def test_bad_model_values_raise(kw):
    with pytest.raises(ValueError, match="got"):
        ModelConfig(**kw)


@pytest.mark.parametrize("kw", [dict(epochs=0), dict(base_lr=0), dict(momentum=1.0), dict(weight_decay=-1e-4),
                                dict(warmup_epochs=900), dict(knn_k=0), dict(knn_temperature=0.0),
                                dict(base_lr=float("nan")), dict(weight_decay=float("inf")),
                                dict(momentum=float("nan"))])
def test_bad_train_values_raise(kw):
    with pytest.raises(ValueError, match="got"):
        TrainConfig(**kw)


def test_round_trip_and_unknown_keys():
    m = ModelConfig.small("phinet", image_size=28)
    assert ModelConfig.from_dict(m.to_dict()) == m
    t = TrainConfig(epochs=3, warmup_epochs=1)
    assert TrainConfig.from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"epochs": 3, "lr_typo": 1})
    assert m.replace(model="simsiam").model == "simsiam"
