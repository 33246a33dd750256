import pytest
import torch

transformers = pytest.importorskip("transformers")

from fastattention.integrations import register_transformers  # noqa: E402


@pytest.fixture(scope="module")
def tiny_llama():
    register_transformers()
    cfg = transformers.LlamaConfig(vocab_size=100, hidden_size=72, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=9, num_key_value_heads=3)  # SmolLM2's 9 / 3 heads
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").eval()


def _logits(model, impl, ids, mask=None):
    model.set_attn_implementation(impl)
    with torch.no_grad():
        return model(ids, attention_mask=mask).logits


def test_logits_equal_sdpa_with_and_without_padding(tiny_llama):
    ids = torch.randint(0, 100, (2, 37), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_logits(tiny_llama, "sdpa", ids), _logits(tiny_llama, "fastattention", ids), atol=1e-5)
    pad = torch.ones(2, 37, dtype=torch.long)
    pad[1, :5] = 0  # left padding
    a, b = _logits(tiny_llama, "sdpa", ids, pad), _logits(tiny_llama, "fastattention", ids, pad)
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1, 5:], b[1, 5:], atol=1e-5)


def test_greedy_generation_with_kv_cache_matches_sdpa(tiny_llama):
    ids = torch.randint(0, 100, (1, 12), generator=torch.Generator().manual_seed(1))
    out = {}
    for impl in ("sdpa", "fastattention"):
        tiny_llama.set_attn_implementation(impl)
        with torch.no_grad():
            out[impl] = tiny_llama.generate(ids, max_new_tokens=6, do_sample=False)
    assert torch.equal(out["sdpa"], out["fastattention"])


def test_from_pretrained_accepts_the_name(tmp_path, tiny_llama):
    tiny_llama.save_pretrained(tmp_path)
    m = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="fastattention")
    assert m.config._attn_implementation == "fastattention"


@pytest.mark.slow
def test_smollm2_logits_equal_sdpa():
    from papercommon.data import load_smollm2

    register_transformers()
    model, tok = load_smollm2()
    ids = tok("The quick brown fox jumps over the lazy dog. " * 8, return_tensors="pt").input_ids
    a, b = _logits(model, "sdpa", ids), _logits(model, "fastattention", ids)
    assert (a - b).abs().max() < 1e-4
