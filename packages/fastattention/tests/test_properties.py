"""Property test (issue 20): random shapes and non-finite values give an error with a message or a finite result."""

import math

import pytest
import torch
from fastattention import TilingMask, attention, lse_merge
from hypothesis import given, settings
from hypothesis import strategies as st

BAD = [math.nan, math.inf, -math.inf]


@settings(max_examples=25, deadline=None)
@given(h=st.sampled_from([1, 2, 4]), hk=st.sampled_from([1, 2, 3]), lq=st.integers(0, 9), lk=st.integers(0, 9),
       d=st.integers(0, 5), causal=st.booleans(), window=st.one_of(st.none(), st.integers(-2, 6)),
       poison=st.one_of(st.none(), st.tuples(st.sampled_from("qkv"), st.sampled_from(BAD))),
       scale=st.one_of(st.none(), st.sampled_from([0.5, 0.0, -1.0, *BAD])), backend=st.sampled_from(["torch", "reference"]))
def test_attention_rejects_or_is_finite(h, hk, lq, lk, d, causal, window, poison, scale, backend):
    g = torch.Generator().manual_seed(0)
    t = {"q": torch.randn(1, h, lq, d, generator=g), "k": torch.randn(1, hk, lk, d, generator=g),
         "v": torch.randn(1, hk, lk, d, generator=g)}
    if poison is not None and t[poison[0]].numel():
        t[poison[0]].view(-1)[0] = poison[1]
    try:
        o = attention(t["q"], t["k"], t["v"], causal=causal, window=window, scale=scale, backend=backend)
    except (ValueError, TypeError) as e:
        assert str(e)
        return
    assert torch.isfinite(o).all()


@settings(max_examples=15, deadline=None)
@given(bad=st.sampled_from(BAD), which=st.sampled_from(["left", "right", "window"]))
def test_masks_reject_non_finite_sizes(bad, which):
    with pytest.raises((ValueError, TypeError)) as e:
        if which == "window":
            TilingMask.sliding_window(bad)
        else:
            TilingMask(**{which: bad})
    assert str(e.value)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), empty=st.booleans())
def test_lse_merge_is_finite_on_empty_rows(n, empty):
    o = torch.randn(n, 3)
    lse = torch.full((n,), -math.inf) if empty else torch.randn(n)
    out, l = lse_merge(o, lse, torch.zeros(n, 3), torch.full((n,), -math.inf))
    assert torch.isfinite(out).all() and not torch.isnan(l).any()
