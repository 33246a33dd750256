import math

import pytest
import torch
from fastattention.config import TilingConfig
from fastattention.functional import (
    TileStats,
    attention_reference,
    lse_merge,
    tiled_attention_backward,
    tiled_attention_forward,
)
from fastattention.masks import TilingMask

SMALL = TilingConfig(block_m=16, block_n=32, inner_n=8)


def _qkv(b, h, hk, lq, lk, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, lq, d, generator=g, dtype=dtype), torch.randn(b, hk, lk, d, generator=g, dtype=dtype),
            torch.randn(b, hk, lk, d, generator=g, dtype=dtype))


def test_reference_matches_closed_form_softmax():
    q, k, v = _qkv(1, 1, 1, 3, 4, 2)
    o, lse = attention_reference(q, k, v, scale=0.5)
    s = (q[0, 0] @ k[0, 0].T) * 0.5
    assert torch.allclose(lse[0, 0], torch.log(torch.exp(s).sum(-1)))
    assert torch.allclose(o[0, 0], torch.softmax(s, -1) @ v[0, 0])


def test_reference_matches_sdpa_gqa_causal():
    q, k, v = _qkv(2, 6, 2, 17, 17, 8, torch.float32)
    o, _ = attention_reference(q, k, v, TilingMask.causal())
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.allclose(o, want, atol=1e-5)


_BAND_MASKS = [TilingMask(), TilingMask.causal(), TilingMask.sliding_window(7),
               TilingMask.sliding_window((5, 3), causal=False)]
_SPARSE = TilingMask.block_sparse(torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.4, 16)
# A block-sparse layout is given per tile for one (Lq, Lk): 4 x 4 tiles of 16 = 64 x 64 only.
_CASES = [(m, lq, lk) for m in _BAND_MASKS for lq, lk in [(1, 64), (37, 53), (64, 64), (60, 30)]] + [(_SPARSE, 64, 64)]


@pytest.mark.parametrize("mask,lq,lk", _CASES)
def test_tiled_forward_backward_equal_reference(mask, lq, lk):
    q, k, v = _qkv(1, 2, 1, lq, lk, 8)
    o, lse = attention_reference(q, k, v, mask, scale=0.25)
    stats = TileStats()
    o2, lse2 = tiled_attention_forward(q, k, v, mask, scale=0.25, tiling=SMALL, stats=stats)
    assert torch.allclose(o, o2, atol=1e-12)
    assert torch.equal(torch.isinf(lse), torch.isinf(lse2))
    assert torch.allclose(lse.nan_to_num(0, 0, 0), lse2.nan_to_num(0, 0, 0), atol=1e-12)
    assert stats.inner == stats.outer * 4 or lk % 32  # 32 / 8 sub-tiles per first-level block
    do = torch.randn_like(o)
    qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
    attention_reference(qq, kk, vv, mask, scale=0.25)[0].backward(do)
    dq, dk, dv = tiled_attention_backward(do, q, k, v, o2, lse2, mask, scale=0.25, tiling=SMALL)
    for got, want in ((dq, qq.grad), (dk, kk.grad), (dv, vv.grad)):
        assert torch.isfinite(got).all()
        assert torch.allclose(got, want, atol=1e-10)


def test_two_level_tiling_is_exact_for_every_outer_inner_pair():
    q, k, v = _qkv(1, 2, 2, 40, 96, 8)
    base, _ = attention_reference(q, k, v, TilingMask.causal())
    outers = []
    for block_n, inner in [(96, 96), (96, 32), (96, 8), (32, 32), (32, 16), (16, 16)]:
        st = TileStats()
        o, _ = tiled_attention_forward(q, k, v, TilingMask.causal(), scale=1 / math.sqrt(8),
                                       tiling=TilingConfig(block_m=40, block_n=block_n, inner_n=inner), stats=st)
        assert torch.allclose(o, base, atol=1e-12)
        outers.append((block_n, st.outer))
    assert dict(outers)[96] == 1 and dict(outers)[16] == 6  # sync points scale as N / B_outer


def test_lse_merge_is_exact_and_handles_empty_parts():
    q, k, v = _qkv(1, 2, 2, 5, 30, 8)
    o, lse = attention_reference(q, k, v)
    o1, l1 = attention_reference(q, k[:, :, :12], v[:, :, :12])
    o2, l2 = attention_reference(q, k[:, :, 12:], v[:, :, 12:])
    om, lm = lse_merge(o1, l1, o2, l2)
    assert torch.allclose(om, o, atol=1e-12) and torch.allclose(lm, lse, atol=1e-12)
    empty = torch.full_like(l1, -math.inf)
    om, lm = lse_merge(o1, l1, torch.zeros_like(o1), empty)
    assert torch.allclose(om, o1) and torch.equal(lm, l1)
    om, lm = lse_merge(torch.zeros_like(o1), empty, torch.zeros_like(o1), empty)
    assert (om == 0).all() and torch.isneginf(lm).all()
