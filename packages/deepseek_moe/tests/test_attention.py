import pytest
import torch
from deepseek_moe import DeepSeekV3Config
from deepseek_moe.modules.attention import MLA, KVCache, RotaryEmbedding


def _mla(**kw):
    torch.manual_seed(0)
    cfg = DeepSeekV3Config.preset("tiny", **kw)
    m = MLA(cfg)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return cfg, m, RotaryEmbedding(cfg)


@pytest.mark.parametrize("q_lora", [48, None])
@pytest.mark.parametrize("yarn", [False, True])
def test_sdpa_path_equals_naive_and_absorbed_reference(q_lora, yarn):
    kw = dict(q_lora_rank=q_lora)
    if yarn:
        kw.update(max_seq_len=256, original_seq_len=16, rope_factor=4.0)
    cfg, m, rot = _mla(**kw)
    assert cfg.yarn_active == yarn
    x = torch.randn(2, 24, cfg.dim)
    cos, sin = rot(0, 24)
    fast = m(x, cos, sin)
    torch.testing.assert_close(fast, m.reference(x, cos, sin, "naive"), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast, m.reference(x, cos, sin, "absorb"), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("impl", ["absorb", "naive"])
def test_incremental_decoding_equals_full_forward(impl):
    cfg, m, rot = _mla()
    x = torch.randn(2, 20, cfg.dim)
    full = m(x, *rot(0, 20))
    cache = KVCache(cfg, 1, 2, 20, impl=impl)
    outs = [m(x[:, :12], *rot(0, 12), cache)]
    cache.length = 12
    for t in range(12, 20):
        outs.append(m(x[:, t:t + 1], *rot(t, 1), cache))
        cache.length = t + 1
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-4)


def test_cache_sizes():
    cfg = DeepSeekV3Config.preset("tiny")
    a = KVCache(cfg, 2, 1, 10, impl="absorb")
    n = KVCache(cfg, 2, 1, 10, impl="naive")
    assert a.bytes_per_token() == 2 * (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * 4
    assert n.bytes_per_token() == 2 * cfg.n_heads * (cfg.qk_head_dim + cfg.v_head_dim) * 4


def test_softmax_scale_mscale():
    import math

    cfg = DeepSeekV3Config.preset("671b")
    m = 0.1 * math.log(40) + 1
    assert cfg.softmax_scale == pytest.approx(192 ** -0.5 * m * m)
    assert DeepSeekV3Config.preset("tiny").softmax_scale == pytest.approx(24 ** -0.5)


def test_cache_overflow_and_positions_raise():
    cfg, m, rot = _mla()
    cache = KVCache(cfg, 1, 1, 4)
    with pytest.raises(ValueError, match="max_len=4"):
        m(torch.randn(1, 5, cfg.dim), *rot(0, 5), cache)
    with pytest.raises(ValueError, match="max_seq_len"):
        rot(250, 10)
