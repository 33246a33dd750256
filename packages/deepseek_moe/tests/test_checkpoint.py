import json

import pytest
import torch
from deepseek_moe import DeepSeekV3, DeepSeekV3Config, load_pretrained, save_pretrained
from deepseek_moe.checkpoint import read_safetensors


def _hf_model(cfg):
    from transformers import DeepseekV3ForCausalLM

    torch.manual_seed(0)
    hf = DeepseekV3ForCausalLM(cfg.to_hf()).eval()
    hf.config._attn_implementation = "eager"
    with torch.no_grad():
        for n, b in hf.named_buffers():
            if n.endswith("e_score_correction_bias"):
                b.copy_(torch.rand_like(b) * 0.1)  # non-negative, as in the released weights
    return hf


@pytest.mark.parametrize("kw", [{}, dict(q_lora_rank=None),
                                dict(max_seq_len=256, original_seq_len=32, rope_factor=4.0, mscale=0.707)])
def test_logits_equal_transformers(tmp_path, kw):
    cfg = DeepSeekV3Config.preset("tiny", **kw)
    hf = _hf_model(cfg)
    hf.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="MTP"):
        ours = load_pretrained(tmp_path)
    assert ours.cfg.yarn_active == cfg.yarn_active
    x = torch.randint(0, cfg.vocab_size, (2, 64))
    with torch.no_grad():
        diff = (hf(x).logits - ours(x).logits).abs().max().item()
    assert diff <= 1e-4


def test_save_load_round_trip_with_mtp(tmp_path, tiny_model):
    with torch.no_grad():
        for g in tiny_model.gates():
            g.e_score_correction_bias.uniform_(-0.01, 0.01)
    save_pretrained(tiny_model, tmp_path)
    keys = set(read_safetensors(tmp_path))
    assert "model.layers.1.mlp.experts.7.down_proj.weight" in keys
    assert "model.layers.1.mlp.gate.e_score_correction_bias" in keys
    assert "model.layers.2.eh_proj.weight" in keys and "model.layers.2.shared_head.norm.weight" in keys
    assert "model.layers.2.shared_head.head.weight" in keys and "model.layers.2.embed_tokens.weight" in keys
    back = load_pretrained(tmp_path)
    assert back.cfg.n_mtp == 1
    for (n, p), (_, q) in zip(tiny_model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(p, q), n
    out, _ = back.generate_speculative(torch.tensor([[1, 2, 3]]), 5)
    assert torch.equal(out, tiny_model.generate(torch.tensor([[1, 2, 3]]), 5))


def test_transformers_loads_our_checkpoint(tmp_path, tiny_model):
    from transformers import DeepseekV3ForCausalLM

    save_pretrained(tiny_model, tmp_path)
    hf = DeepseekV3ForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    x = torch.randint(0, 128, (1, 20))
    with torch.no_grad():
        assert (hf(x).logits - tiny_model(x).logits).abs().max().item() <= 1e-4


def test_fp8_checkpoint_dequantized_on_load(tmp_path):
    cfg = DeepSeekV3Config.preset("tiny", dim=128, inter_dim=128, moe_inter_dim=128, q_lora_rank=128,
                                  kv_lora_rank=128, n_heads=8, v_head_dim=16)
    torch.manual_seed(0)
    m = DeepSeekV3(cfg).eval()
    from deepseek_moe.checkpoint import save_pretrained

    save_pretrained(m, tmp_path, fp8=True)
    sd = read_safetensors(tmp_path)
    w = sd["model.layers.0.self_attn.q_b_proj.weight"]
    assert w.dtype == torch.float8_e4m3fn
    assert sd["model.layers.0.self_attn.q_b_proj.weight_scale_inv"].shape == (8 * 24 // 128 + 1, 1)
    assert json.loads((tmp_path / "config.json").read_text())["quantization_config"]["weight_block_size"] == [128, 128]
    back = load_pretrained(tmp_path)
    a = m.layers[0].self_attn.q_b_proj.weight
    b = back.layers[0].self_attn.q_b_proj.weight
    assert ((a - b).abs() / a.abs().amax()).max() < 2 ** -4  # e4m3: 3 mantissa bits
    x = torch.randint(0, 128, (1, 16))
    with torch.no_grad():
        p, q = m(x).logits.softmax(-1), back(x).logits.softmax(-1)
    assert (p - q).abs().max() < 0.05


def test_missing_and_unexpected_tensors_raise(tmp_path, tiny_model):
    from safetensors.torch import save_file

    save_pretrained(tiny_model, tmp_path)
    sd = read_safetensors(tmp_path)
    sd.pop("model.layers.0.self_attn.o_proj.weight")
    sd["model.layers.0.self_attn.bogus.weight"] = torch.zeros(1)
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing 1 tensor.*o_proj.*unexpected 1 tensor.*bogus"):
        load_pretrained(tmp_path)
    sd = read_safetensors(tmp_path)
    sd.pop("model.layers.1.mlp.experts.3.up_proj.weight")
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"experts.3.up_proj"):
        load_pretrained(tmp_path)


def test_sharded_save(tmp_path, tiny_model):
    save_pretrained(tiny_model, tmp_path, max_shard_bytes=100_000)
    assert (tmp_path / "model.safetensors.index.json").exists()
    back = load_pretrained(tmp_path)
    x = torch.randint(0, 128, (1, 8))
    torch.testing.assert_close(back(x).logits, tiny_model(x).logits)


def test_load_mtp_true_requires_tensors(tmp_path):
    cfg = DeepSeekV3Config.preset("tiny")
    _hf_model(cfg).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="load_mtp=True"):
        load_pretrained(tmp_path, load_mtp=True)


def test_loaded_model_is_trainable(tmp_path, tiny_model):
    save_pretrained(tiny_model, tmp_path)
    back = load_pretrained(tmp_path)
    assert all(p.requires_grad for p in back.parameters())
    x = torch.randint(0, 128, (1, 8))
    back.train()
    back(x, labels=x).loss.backward()
    assert back.layers[1].mlp.experts.gate_up_proj.grad is not None
