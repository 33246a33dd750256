import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from fastattention import TilingConfig, TilingMask, attention

SMALL = TilingConfig(block_m=32, block_n=64, inner_n=32)


def _qkv(b=1, h=4, hk=2, lq=70, lk=70, d=16, dtype=torch.float32, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple((torch.randn(*s, generator=g) * scale).to(dtype)
                 for s in ((b, h, lq, d), (b, hk, lk, d), (b, hk, lk, d)))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("hk", [1, 2, 4])
def test_torch_backend_matches_sdpa_with_gqa(causal, hk):
    q, k, v = _qkv(hk=hk)
    got = attention(q, k, v, causal=causal, backend="torch", tiling=SMALL)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    assert torch.allclose(got, want, atol=2e-6)


def test_bottom_right_causal_for_decoding():
    q, k, v = _qkv(lq=3, lk=50)
    got = attention(q, k, v, causal=True, backend="torch", tiling=SMALL)
    full_q = torch.cat([torch.zeros(1, 4, 47, 16), q], dim=2)
    want = F.scaled_dot_product_attention(full_q, k, v, is_causal=True, enable_gqa=True)[:, :, -3:]
    assert torch.allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2), (torch.float32, 2e-6)])
def test_dtypes_and_autograd_against_reference(dtype, tol):
    q, k, v = (t.requires_grad_() for t in _qkv(dtype=dtype))
    o, lse = attention(q, k, v, causal=True, window=20, return_lse=True, backend="torch", tiling=SMALL)
    assert o.dtype == dtype and lse.dtype == torch.float32
    (o.float().square().sum() + lse.sum()).backward()
    grads = [t.grad.float() for t in (q, k, v)]
    q2, k2, v2 = (t.detach().double().requires_grad_() for t in (q, k, v))
    o2, lse2 = attention(q2, k2, v2, causal=True, window=20, return_lse=True, backend="reference")
    (o2.square().sum() + lse2.sum()).backward()
    assert (o.double() - o2).abs().max() < tol
    for g, t in zip(grads, (q2, k2, v2)):
        assert (g.double() - t.grad).abs().max() < 20 * tol * max(1.0, t.grad.abs().max().item())


def test_gradcheck_tiny():
    q, k, v = (t.double().requires_grad_() for t in _qkv(h=2, hk=1, lq=3, lk=5, d=2))
    tiling = TilingConfig(block_m=2, block_n=4, inner_n=2)
    f = lambda q, k, v: attention(q, k, v, causal=True, return_lse=True, backend="torch", tiling=tiling)
    assert torch.autograd.gradcheck(f, (q, k, v), fast_mode=True)


def test_fully_masked_rows_give_zeros_and_minus_inf_lse():
    q, k, v = (t.requires_grad_() for t in _qkv(lq=10, lk=4))
    o, lse = attention(q, k, v, causal=True, return_lse=True, backend="torch", tiling=SMALL)
    assert (o[:, :, :6] == 0).all() and torch.isneginf(lse[:, :, :6]).all()
    assert torch.isfinite(o).all() and torch.isfinite(lse[:, :, 6:]).all()
    o.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    # a dense mask that hides every key of some rows
    m = torch.ones(1, 1, 10, 4, dtype=torch.bool)
    m[..., 3, :] = False
    o, lse = attention(q, k, v, mask=m, return_lse=True, backend="torch")
    assert (o[:, :, 3] == 0).all() and torch.isneginf(lse[:, :, 3]).all()


def test_fp16_inputs_that_overflow_a_naive_softmax():
    q, k, v = _qkv(dtype=torch.float16, scale=30.0)
    with torch.no_grad():
        e = torch.exp((q @ k.repeat_interleave(2, 1).transpose(-1, -2)) * 0.25)
        naive = e / e.sum(-1, keepdim=True)
    assert not torch.isfinite(naive).all()  # fp16 exp(scores) overflows
    got = attention(q, k, v, backend="torch")
    want = attention(q.double(), k.double(), v.double(), backend="reference")
    assert torch.isfinite(got).all() and (got.double() - want).abs().max() < 1e-2 * want.abs().max()


def test_dense_masks_bool_and_additive():
    q, k, v = _qkv()
    keep = torch.rand(1, 1, 70, 70, generator=torch.Generator().manual_seed(3)) > 0.3
    got = attention(q, k, v, mask=keep, backend="torch", tiling=SMALL)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True)
    assert torch.allclose(got, want, atol=2e-6)
    bias = torch.randn(1, 4, 70, 70)
    got = attention(q, k, v, mask=bias, causal=True, backend="torch", tiling=SMALL)
    causal = torch.ones(70, 70, dtype=torch.bool).tril()
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(~causal, -math.inf), enable_gqa=True)
    assert torch.allclose(got, want, atol=2e-6)


def test_block_sparse_matches_dense_equivalent():
    q, k, v = _qkv(lq=64, lk=64)
    lay = torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    lay[:, 0] = True
    tm = TilingMask.block_sparse(lay, 16)
    got = attention(q, k, v, mask=tm, causal=True, backend="torch", tiling=SMALL)
    want = attention(q, k, v, mask=tm.dense(64, 64) & torch.ones(64, 64, dtype=torch.bool).tril(), backend="reference")
    assert torch.allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("args,kwargs,exc,msg", [
    (((1, 4, 8, 16), (1, 3, 8, 16), (1, 3, 8, 16)), {}, ValueError, "multiple of key/value heads"),
    (((1, 4, 8, 16), (1, 2, 8, 8), (1, 2, 8, 8)), {}, ValueError, "head_dim must match, got q 16, k 8"),
    (((1, 4, 8, 16), (2, 2, 8, 16), (2, 2, 8, 16)), {}, ValueError, "batch sizes differ"),
    (((1, 4, 8, 16), (1, 2, 8, 16), (1, 2, 9, 16)), {}, ValueError, "same heads and length"),
    (((4, 8, 16),) * 3, {}, ValueError, "must be \\[batch, heads, seq, head_dim\\]"),
    (((1, 4, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), {"backend": "cuda"}, ValueError, "backend must be one of"),
    (((1, 4, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), {"scale": -1.0}, ValueError, "positive finite"),
    (((1, 4, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), {"mask": torch.ones(8, 9, dtype=torch.bool)}, ValueError,
     "must broadcast"),
    (((1, 4, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), {"window": 0}, ValueError, "window: expected"),
])
def test_bad_input_says_expected_and_given(args, kwargs, exc, msg):
    q, k, v = (torch.randn(*s) for s in args)
    with pytest.raises(exc, match=msg):
        attention(q, k, v, **kwargs)


def test_dtype_and_device_mismatch():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="share a dtype"):
        attention(q, k.double(), v)
    with pytest.raises(ValueError, match="on one device"):
        attention(q, k.to("meta"), v)


def test_forced_triton_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="backend='triton' cannot run this call: .*need CUDA"):
        attention(q, k, v, backend="triton")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto on the CPU picks torch silently: that is the intended path
        attention(q, k, v)
