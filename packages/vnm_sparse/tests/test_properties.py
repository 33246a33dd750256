"""Property tests (issue 20): random shapes and non-finite values fed to the public functions give an error
with a message or a finite result."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from vnm_sparse import VNMConfig, mask_diversity, pack_vnm, vnm_mask, vnm_matmul

bad_float = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1.5])


@settings(max_examples=25, deadline=None)
@given(r=st.integers(1, 40), c=st.integers(1, 40), v=st.integers(1, 20), m=st.integers(3, 9),
       poison=st.sampled_from([None, math.nan, math.inf]))
def test_vnm_mask_error_or_valid(r, c, v, m, poison):
    w = torch.randn(r, c)
    if poison is not None:
        w[0, 0] = poison
    try:
        mask = vnm_mask(w, v, 2, m, pad=True)
    except ValueError as e:
        assert str(e)
        return
    assert mask.shape == w.shape and mask.dtype == torch.bool


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 6), poison=st.sampled_from([None, math.nan, math.inf]))
def test_matmul_finite_or_error(t, poison):
    w = torch.randn(32, 40)
    p = pack_vnm(w, vnm_mask(w, 16, 2, 5), 16, 5)
    x = torch.randn(t, 40)
    if poison is not None:
        x[0, 0] = poison
    try:
        y = vnm_matmul(x, p, backend="torch")
    except ValueError as e:
        assert str(e)
        return
    assert torch.isfinite(y[1:]).all()  # rows without the poisoned token stay finite


@settings(max_examples=25, deadline=None)
@given(v=st.one_of(st.integers(-3, 70), bad_float), m=st.one_of(st.integers(-3, 20), bad_float),
       alpha=bad_float)
def test_config_and_md_error_or_finite(v, m, alpha):
    try:
        VNMConfig(v=v, m=m, ria_alpha=alpha)
    except ValueError as e:
        assert str(e)
    try:
        md = mask_diversity(v, m)
    except (ValueError, TypeError) as e:
        assert str(e)
        return
    assert math.isfinite(md)
