import pytest
import torch
from fastattention import attention
from fastattention.offload import OffloadedKVCache, OffloadStats, offloaded_attention


def _qkv(lq=50, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, lq, 16, generator=g), torch.randn(1, 2, n, 16, generator=g), torch.randn(1, 2, n, 16, generator=g)


@pytest.mark.parametrize("mode", ["stream", "host"])
@pytest.mark.parametrize("kw", [{"causal": True}, {}, {"window": 40}, {"window": (30, 20), "causal": False}])
def test_split_kv_equals_full_attention(mode, kw):
    q, k, v = _qkv()
    full, lse = attention(q, k, v, return_lse=True, **kw)
    st = OffloadStats()
    o, l2 = offloaded_attention(q, k[:, :, :100], v[:, :, :100], k[:, :, 100:], v[:, :, 100:], chunk=64, mode=mode,
                                stats=st, return_lse=True, **kw)
    assert torch.allclose(o, full, atol=1e-6) and torch.allclose(l2, lse, atol=1e-5)
    assert st.chunks + st.skipped_chunks == 4
    if "window" in kw:
        assert st.skipped_chunks == 1  # the window never reaches the first host chunk
    if mode == "stream" and not st.skipped_chunks:
        assert st.bytes_transferred == 200 * 2 * (2 * 16 * 4)  # every host key, K and V, once


def test_cache_respects_budget_and_decodes_exactly():
    q, k, v = _qkv(lq=1, n=500)
    per_pos = 2 * 2 * 16 * 4  # K and V, 2 heads, d 16, fp32
    cache = OffloadedKVCache(device_budget_bytes=per_pos * 120, device="cpu")
    for s in range(0, 500, 90):
        cache.append(k[:, :, s:s + 90], v[:, :, s:s + 90])
    assert (cache.device_len, cache.host_len) == (120, 380) and cache.nbytes_device <= per_pos * 120
    for mode in ("stream", "host"):
        got = cache.attention(q, causal=True, chunk=100, mode=mode)
        assert torch.allclose(got, attention(q, k, v, causal=True), atol=1e-6)


def test_only_host_or_only_device():
    q, k, v = _qkv()
    full = attention(q, k, v, causal=True)
    assert torch.allclose(offloaded_attention(q, None, None, k, v, chunk=128, causal=True), full, atol=1e-6)
    assert torch.allclose(offloaded_attention(q, k, v, None, None, causal=True), full, atol=1e-6)


def test_bad_arguments():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="mode must be 'stream' or 'host', got 'gpu'"):
        offloaded_attention(q, k, v, None, None, mode="gpu")
    with pytest.raises(ValueError, match="at least one part"):
        offloaded_attention(q, None, None, None, None)
    with pytest.raises(ValueError, match="device_budget_bytes must be an int >= 0"):
        OffloadedKVCache(-1)
