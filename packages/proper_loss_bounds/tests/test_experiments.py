import torch
from proper_loss_bounds import LearningCurveConfig
from proper_loss_bounds.experiments import SyntheticTask, fit_softmax_regression, learning_curve


def test_fit_recovers_true_model():
    task = SyntheticTask.make(3, 2, 1.5, seed=0)
    g = torch.Generator().manual_seed(0)
    x, y, _ = task.sample(4000, g)
    for loss in ("log", "spherical"):
        w, b, info = fit_softmax_regression(x, y, loss, max_iter=30)
        assert info["grad_norm"] < 1e-8
        xt, _, pt = task.sample(2000, g)
        q = torch.softmax(xt @ w.T + b, -1)
        assert float((q - pt).abs().amax(-1).mean()) < 0.03


def test_learning_curve_tiny():
    cfg = LearningCurveConfig(sample_sizes=(200, 3200), seeds=(0,), losses=("log",), num_test=500, max_iter=30)
    out = learning_curve(cfg, progress=False)
    f = out["fits"]["log"]
    assert f["mean_err"][1] < f["mean_err"][0]
    assert f["max_bound_ratio"] <= 1 + 1e-9  # ||q - p|| <= sqrt(2R/lambda) pointwise
    assert max(f["err_over_sqrt_regret"]) <= f["predicted_constant"]
    assert len(out["runs"]) == 2
