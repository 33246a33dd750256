import math

import numpy as np
import pytest
from polyak_clip.synthetic import SyntheticConfig, best_of_grid, iterations_to, run_method, run_synthetic


def test_config_defaults_are_the_papers():
    cfg = SyntheticConfig()
    assert (cfg.L0, cfg.x0, cfg.f_star, cfg.lower_bound) == (1.0, 5.0, 1.0, 0.0)
    assert cfg.L1_values == (1.0, 10.0, 100.0, 1000.0)
    assert (cfg.iters_tuned, cfg.iters_adaptive) == (500, 10_000)
    assert len(cfg.lr_grid) == 9 and cfg.clip_grid[-1] == math.inf
    assert SyntheticConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="lower_bound: expected <= f_star"):
        SyntheticConfig(lower_bound=2.0)


def test_grid_is_vectorised_and_gd_matches_a_scalar_loop():
    cfg = SyntheticConfig(iters_tuned=20)
    res = run_method("gd", 10.0, cfg)
    assert res["gaps"].shape == (21, len(cfg.lr_grid))
    lr, x = 1e-2, 5.0
    for _ in range(20):
        x -= lr * (100 / 18 * x**3 + x / 2)
    j = cfg.lr_grid.index(1e-2)
    assert res["gaps"][-1, j] == pytest.approx(100 / 72 * x**4 + x**2 / 4)


def test_divergence_is_inf_not_nan():
    res = run_method("gd", 1000.0, SyntheticConfig(iters_tuned=10))
    assert np.isinf(res["gaps"][-1, 0]) and not np.isnan(res["gaps"]).any()


def test_iterations_to_and_best_of_grid():
    assert iterations_to(np.array([3.0, 1.0, 0.001]), 0.01) == 2
    assert iterations_to(np.array([3.0, 1.0]), 0.01) == math.inf
    curve, hp = best_of_grid({"gaps": np.array([[5.0, 5.0], [1.0, 0.1], [0.5, 0.1]]), "grid": [{"a": 0}, {"a": 1}]})
    assert hp == {"a": 1} and curve[-1] == 0.1


@pytest.mark.slow
def test_figure1_claims():
    res = run_synthetic()["results"]
    for m in ("gd", "decsps", "adasps"):
        assert res[1000.0][m]["final_gap"] > 1e3 * max(res[1.0][m]["final_gap"], 1e-12)
    for m in ("polyak", "clipped_gd", "inexact_polyak"):
        assert all(math.isfinite(res[L1][m]["iterations_to_tol"]) for L1 in res)
