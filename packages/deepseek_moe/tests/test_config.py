import json

import pytest
import torch
from deepseek_moe import DeepSeekV3, DeepSeekV3Config


def test_defaults_are_the_papers_671b():
    c = DeepSeekV3Config()
    assert (c.dim, c.n_layers, c.n_dense_layers, c.n_heads) == (7168, 61, 3, 128)
    assert (c.n_routed_experts, c.n_shared_experts, c.n_activated_experts) == (256, 1, 8)
    assert (c.n_expert_groups, c.n_limited_groups, c.route_scale, c.score_func) == (8, 4, 2.5, "sigmoid")
    assert (c.q_lora_rank, c.kv_lora_rank, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim) == (
        1536, 512, 128, 64, 128)
    assert (c.bias_update_rate, c.seq_aux_alpha, c.n_mtp, c.mtp_lambda) == (0.001, 0.0001, 1, 0.3)
    assert (c.rope_factor, c.beta_fast, c.beta_slow, c.original_seq_len) == (40.0, 32, 1, 4096)
    assert c.yarn_active


def test_671b_parameter_counts_on_meta():
    cfg = DeepSeekV3Config.preset("671b")
    with torch.device("meta"):
        m = DeepSeekV3(cfg)
    assert abs(m.num_parameters() / 1e9 - 671) < 1.0  # paper: 671B total
    assert abs(m.num_parameters(activated=True) / 1e9 - 37) < 1.0  # paper: 37B activated
    # MLA cache: 576 values per token per layer vs 40,960 for MHA with the same heads.
    assert cfg.kv_cache_elements_per_token("absorb") == 576
    assert cfg.kv_cache_elements_per_token("naive") == 128 * (192 + 128)


def test_round_trip_dict_and_hf():
    for name in ["tiny", "small", "671b"]:
        c = DeepSeekV3Config.preset(name)
        assert DeepSeekV3Config.from_dict(json.loads(json.dumps(c.to_dict()))) == c
        back = DeepSeekV3Config.from_hf(c.to_hf())
        for f in ["dim", "n_layers", "n_routed_experts", "n_limited_groups", "q_lora_rank", "route_scale",
                  "rope_factor", "max_seq_len", "n_mtp", "dtype"]:
            assert getattr(back, f) == getattr(c, f), (name, f)
        assert back.softmax_scale == pytest.approx(c.softmax_scale)


def test_from_hf_reads_v4_rope_scaling_and_fp8():
    d = DeepSeekV3Config.preset("671b").hf_dict()
    rp = d.pop("rope_parameters")
    d["rope_theta"] = rp.pop("rope_theta")
    d["rope_scaling"] = {"type": rp.pop("rope_type"), **rp}
    c = DeepSeekV3Config.from_hf(d)
    assert c.yarn_active and c.rope_factor == 40 and c.dtype == "fp8" and c.fp8_block_size == 128


def test_q_lora_zero_means_none():
    assert DeepSeekV3Config.preset("tiny", q_lora_rank=0).q_lora_rank is None


@pytest.mark.parametrize("kw, field", [
    (dict(n_routed_experts=10, n_expert_groups=4), "n_routed_experts"),
    (dict(n_limited_groups=3, n_expert_groups=2), "n_limited_groups"),
    (dict(n_activated_experts=6, n_expert_groups=2, n_limited_groups=1), "n_activated_experts"),
    (dict(dtype="fp8"), "dim=64"),
    (dict(score_func="relu"), "score_func"),
    (dict(qk_rope_head_dim=7), "qk_rope_head_dim"),
    (dict(n_dense_layers=5), "n_dense_layers"),
    (dict(dim=0), "dim"),
    (dict(attn_impl="flash"), "attn_impl"),
])
def test_inconsistent_configs_raise_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        DeepSeekV3Config.preset("tiny", **kw)


def test_unknown_preset_and_fields():
    with pytest.raises(ValueError, match="expected one of"):
        DeepSeekV3Config.preset("7b")
    with pytest.raises(ValueError, match="unknown key"):
        DeepSeekV3Config.from_dict({"dim": 64, "hidden": 3})
