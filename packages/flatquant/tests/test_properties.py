"""Property tests (issue 20): random non-finite values and shapes into the public functions give an error
with a message, or a finite result."""

import math

import flatquant as fq
import pytest
import torch
from flatquant import functional as FQ
from hypothesis import given, settings
from hypothesis import strategies as st

FLOATS = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.sampled_from([math.nan, math.inf, -math.inf]))


def _tensor(vals, cols):
    cols = min(cols, len(vals))
    rows = len(vals) // cols
    return torch.tensor(vals[: rows * cols], dtype=torch.float32).reshape(rows, cols)


@settings(max_examples=40, deadline=None)
@given(st.lists(FLOATS, min_size=4, max_size=48), st.sampled_from([4, 8]), st.sampled_from([2, 4, 8]),
       st.booleans())
def test_fake_quantizers_finite_or_clear_error(vals, cols, bits, sym):
    x = _tensor(vals, cols)
    try:
        y = FQ.fake_quantize(x, bits, sym)
    except ValueError as e:
        assert "expected finite values" in str(e) and not torch.isfinite(x).all()
        return
    assert torch.isfinite(y).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(FLOATS, min_size=4, max_size=48), st.sampled_from([4, 6]),
       st.floats(-20, 20, allow_nan=False), st.floats(-20, 20, allow_nan=False))
def test_lwc_clip_then_quantize_is_finite(vals, cols, cmax, cmin):
    w = _tensor(vals, cols)
    if not torch.isfinite(w).all():
        with pytest.raises(ValueError, match="weight: expected finite values"):
            FQ.quantize_weight_sym(w, 4)
        return
    c = FQ.clip_rows(w, torch.sigmoid(torch.tensor(cmax)), torch.sigmoid(torch.tensor(cmin)))
    q, s = FQ.quantize_weight_sym(c, 4)
    assert torch.isfinite(s).all() and (s > 0).all() and q.abs().max() <= 8


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 64), st.integers(-3, 3))
def test_get_decompose_dim_factorises_or_explains(n, _):
    try:
        a, b = FQ.get_decompose_dim(n)
    except ValueError as e:
        assert "Kronecker transform" in str(e)
        return
    assert a * b == n and 2 <= a <= b


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["epochs", "nsamples", "seqlen", "batch_size", "lr", "clip_lr_mult", "diag_alpha",
                        "weight_decay", "min_lr_ratio", "clip_init", "gptq_percdamp"]),
       st.one_of(FLOATS, st.integers(-5, 0)))
def test_config_rejects_bad_values_with_a_message(field, value):
    try:
        fq.FlatQuantConfig(**{field: value})
    except (ValueError, TypeError) as e:
        assert field in str(e)
