"""Property tests (issue 20): random shapes and non-finite values into the public functions give either an error
with a message or a finite result."""

import math

import pytest
import torch
from deepseek_moe import DeepSeekV3, DeepSeekV3Config
from deepseek_moe import functional as Fn
from deepseek_moe.fp8 import act_quant, weight_quant
from hypothesis import given, settings
from hypothesis import strategies as st

FLOATS = st.one_of(st.floats(-1e4, 1e4), st.sampled_from([math.nan, math.inf, -math.inf]))
SETTINGS = settings(max_examples=25, deadline=None)
_MODEL = None


def _model() -> DeepSeekV3:
    global _MODEL
    if _MODEL is None:
        torch.manual_seed(0)
        _MODEL = DeepSeekV3(DeepSeekV3Config.preset("tiny")).eval()
    return _MODEL


def _error_or_finite(fn, *args, **kw):
    try:
        out = fn(*args, **kw)
    except ValueError as e:
        assert str(e), "an error must carry a message"
        return None
    for t in out if isinstance(out, tuple) else (out,):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            assert torch.isfinite(t).all(), f"{fn.__name__} returned non-finite values without an error"
    return out


@SETTINGS
@given(n=st.integers(1, 6), e=st.sampled_from([4, 8]), k=st.integers(0, 9), vals=st.lists(FLOATS, min_size=1,
                                                                                           max_size=4))
def test_route(n, e, k, vals):
    logits = torch.tensor(vals * (n * e // len(vals) + 1))[: n * e].view(n, e).float()
    _error_or_finite(Fn.route, logits, torch.zeros(e), topk=k, n_groups=2, topk_groups=1)


@SETTINGS
@given(vals=st.lists(FLOATS, min_size=0, max_size=8))
def test_max_violation(vals):
    _error_or_finite(Fn.max_violation, torch.tensor(vals, dtype=torch.float32))


@SETTINGS
@given(rows=st.integers(1, 3), blocks=st.integers(1, 2), bad=FLOATS)
def test_fp8_quantizers(rows, blocks, bad):
    x = torch.randn(rows, 128 * blocks)
    x[0, 0] = bad
    _error_or_finite(act_quant, x)
    _error_or_finite(weight_quant, x)


@SETTINGS
@given(b=st.integers(0, 2), s=st.integers(0, 5), lo=st.integers(-3, 130), dtype=st.sampled_from([torch.int64,
                                                                                                  torch.float32]))
def test_forward_ids(b, s, lo, dtype):
    ids = (torch.arange(b * s).view(b, s) + lo).to(dtype)
    with torch.no_grad():
        out = _error_or_finite(lambda i: _model()(i).logits, ids)
    if out is not None:
        assert out.shape == (b, s, 128)


@SETTINGS
@given(t=FLOATS, n=st.integers(-3, 4))
def test_generate_arguments(t, n):
    gen = torch.Generator().manual_seed(0)
    out = _error_or_finite(_model().generate, torch.tensor([[1, 2, 3]]), n, temperature=t, generator=gen)
    if out is not None:
        assert out.shape == (1, 3 + n) and int(out.min()) >= 0 and int(out.max()) < 128


@SETTINGS
@given(dim=st.integers(-2, 96), lr=FLOATS)
def test_config_values(dim, lr):
    try:
        DeepSeekV3Config.preset("tiny", dim=dim, bias_update_rate=lr)
    except (ValueError, TypeError) as e:
        assert str(e)
    else:
        assert dim > 0 and math.isfinite(lr) and lr >= 0


def test_property_helper_catches_nan():
    with pytest.raises(AssertionError):
        _error_or_finite(lambda: torch.tensor([math.nan]))
