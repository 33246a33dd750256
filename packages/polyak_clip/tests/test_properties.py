"""Property tests (issue 20): random non-finite values and shapes into the public API give either an error
that names the argument or a finite result."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from polyak_clip import OPTIMIZERS
from polyak_clip.neural import NeuralConfig
from polyak_clip.synthetic import SyntheticConfig

# finite values up to 1e6 in size (a finite but huge lr legitimately diverges), the non-finite ones, and
# values a float32 cannot hold (an error, not an overflow inside the step)
ANY_FLOAT = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf, 1e39, -1e39, 1e-50]))
HYPER = {"inexact_polyak": ("lower_bound", "eps", "lr"), "polyak": ("f_star", "max_step", "eps", "lr"),
         "decsps": ("lower_bound", "c0", "gamma_b", "eps", "lr"), "adasps": ("lower_bound", "c_p", "eps", "lr"),
         "dog": ("reps_rel", "eps", "lr"), "clipped_sgd": ("lr", "clip", "eps")}
SETTINGS = settings(max_examples=25, deadline=None)


def _problem(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.Parameter(torch.randn(shape, generator=g))
    return x, lambda: (x**2).sum() + 1.0


def _make(method, params, **kw):
    if method == "inexact_polyak":
        kw.setdefault("T", 10)
    if method == "clipped_sgd":
        kw.setdefault("lr", 0.1)
    return OPTIMIZERS[method](params, **kw)


def _closure(opt, f):
    def closure():
        opt.zero_grad()
        loss = f()
        loss.backward()
        return loss

    return closure


@SETTINGS
@given(method=st.sampled_from(sorted(HYPER)), data=st.data(), value=ANY_FLOAT)
def test_hyperparameters_error_or_finite_step(method, data, value):
    name = data.draw(st.sampled_from(HYPER[method]))
    x, f = _problem((3,))
    try:
        opt = _make(method, [x], **{name: value})
    except ValueError as e:
        assert str(e).startswith(f"{name}: expected"), str(e)
        return
    for _ in range(3):
        opt.step(_closure(opt, f))
    assert torch.isfinite(x).all()


@SETTINGS
@given(method=st.sampled_from(sorted(HYPER)), loss_scale=ANY_FLOAT,
       shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), poison=st.booleans())
def test_nonfinite_losses_and_gradients_never_reach_the_parameters(method, loss_scale, shape, poison):
    x, _ = _problem(shape)
    before = x.detach().clone()
    opt = _make(method, [x])
    mask = torch.ones(shape)
    if poison and x.numel():
        mask.view(-1)[0] = math.inf  # one infinite gradient entry

    def f():
        return ((x * mask) ** 2).sum().clamp(max=1e3) * loss_scale + 1.0

    opt.step(_closure(opt, f))
    assert torch.isfinite(x).all()
    skipped = opt.diagnostics()["nonfinite_steps"] == 1
    assert skipped == (not math.isfinite(f().item()) or not torch.isfinite(x.grad).all().item())
    if skipped:
        assert torch.equal(x.detach(), before)


@SETTINGS
@given(field=st.sampled_from(["L0", "x0", "f_star", "lower_bound", "tol"]), value=ANY_FLOAT)
def test_synthetic_config_rejects_or_accepts(field, value):
    try:
        cfg = SyntheticConfig(**{field: value})
    except ValueError as e:
        assert field in str(e)
        return
    assert all(math.isfinite(getattr(cfg, k)) for k in ("L0", "x0", "f_star", "lower_bound", "tol"))


@SETTINGS
@given(field=st.sampled_from(["steps", "batch_size", "block_size", "width", "layers", "vocab_size", "eval_batches"]),
       value=st.one_of(st.integers(-5, 3), st.floats(allow_nan=True), st.none()))
def test_neural_config_rejects_bad_sizes(field, value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        assert getattr(NeuralConfig(**{field: value}), field) == value
    else:
        with pytest.raises(ValueError, match=f"{field}: expected an int >= 1"):
            NeuralConfig(**{field: value})
