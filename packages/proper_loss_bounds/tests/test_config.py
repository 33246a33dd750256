import pytest
from proper_loss_bounds import LearningCurveConfig, RegretBoundConfig


def test_defaults_follow_the_notes():
    c = RegretBoundConfig()
    assert (c.r_min, c.r_max, c.num_classes, c.norm) == (1e-6, 1e-1, 3, 2.0)
    lc = LearningCurveConfig()
    assert lc.losses == ("log", "brier", "spherical", "tsallis-1.5")


@pytest.mark.parametrize("cls", [RegretBoundConfig, LearningCurveConfig])
def test_round_trip(cls):
    c = cls()
    assert cls.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("kw, msg", [
    (dict(num_classes=1), "num_classes"),
    (dict(norm=0.5), "norm"),
    (dict(r_min=1e-2, r_max=1e-3), "r_min"),
    (dict(fit_r_max=1.0), "fit_r_max"),
    (dict(losses=()), "losses"),
])
def test_regret_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RegretBoundConfig(**kw)


@pytest.mark.parametrize("kw, msg", [
    (dict(sample_sizes=(100,)), "sample_sizes"),
    (dict(weight_scale=0.0), "weight_scale"),
    (dict(num_test=5), "num_test"),
    (dict(seeds=()), "seeds"),
])
def test_curve_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        LearningCurveConfig(**kw)


def test_from_dict_unknown_key():
    with pytest.raises(ValueError, match="unknown keys"):
        RegretBoundConfig.from_dict({"nope": 1})
