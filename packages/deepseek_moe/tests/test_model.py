import pytest
import torch
from deepseek_moe import DeepSeekV3, DeepSeekV3Config


def test_forward_shapes_and_losses(tiny_model, tiny_cfg):
    x = torch.randint(0, tiny_cfg.vocab_size, (2, 12))
    out = tiny_model(x)
    assert out.logits.shape == (2, 12, tiny_cfg.vocab_size) and out.loss is None
    tiny_model.train()
    out = tiny_model(x[:, :-1], labels=x[:, 1:])
    assert out.mtp_loss is not None and len(out.mtp_losses) == tiny_cfg.n_mtp
    total = out.lm_loss + tiny_cfg.mtp_lambda * out.mtp_loss + out.aux_loss
    torch.testing.assert_close(out.loss, total)
    out.loss.backward()
    assert tiny_model.mtp[0].eh_proj.weight.grad is not None
    assert all(p.grad is not None for p in tiny_model.parameters())


def test_mtp_off_when_lambda_zero():
    torch.manual_seed(0)
    m = DeepSeekV3(DeepSeekV3Config.preset("tiny", mtp_lambda=0.0))
    x = torch.randint(0, 128, (1, 9))
    out = m(x[:, :-1], labels=x[:, 1:])
    assert out.mtp_loss is None


@pytest.mark.parametrize("impl", ["absorb", "naive"])
def test_generate_with_cache_equals_full_forward_greedy(tiny_model, impl):
    prompt = torch.randint(0, 128, (2, 7))
    gen = tiny_model.generate(prompt, 10, impl=impl)
    seq = prompt
    for _ in range(10):  # greedy without a cache
        nxt = tiny_model(seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    assert torch.equal(gen, seq)


def test_incremental_logits_equal_full(tiny_model):
    x = torch.randint(0, 128, (1, 16))
    full = tiny_model(x).logits
    cache = tiny_model.new_cache(1, 16)
    parts = [tiny_model(x[:, :10], cache=cache).logits]
    parts += [tiny_model(x[:, t:t + 1], cache=cache).logits for t in range(10, 16)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-4)


def test_speculative_decoding_equals_greedy(tiny_model):
    prompt = torch.randint(0, 128, (1, 5))
    ref = tiny_model.generate(prompt, 17)
    out, stats = tiny_model.generate_speculative(prompt, 17)
    assert torch.equal(out, ref)
    assert 0.0 <= stats["acceptance_rate"] <= 1.0
    assert stats["main_forwards"] <= 17


def _bigram_model() -> DeepSeekV3:
    """A model whose next token is a fixed function of the current one: attention outputs, FFNs and experts are
    zero, so h_i = Emb(t_i) and logits_i = head(norm(Emb(t_i))). Token 0 is never predicted (its head row is 0
    while the best of the other logits is positive)."""
    torch.manual_seed(0)
    m = DeepSeekV3(DeepSeekV3Config.preset("tiny")).eval()
    with torch.no_grad():
        for blk in [*m.layers, *(mod.block for mod in m.mtp)]:
            blk.self_attn.o_proj.weight.zero_()
            for p in blk.mlp.parameters():
                if p.dim() >= 2 and p is not getattr(getattr(blk.mlp, "gate", None), "weight", None):
                    p.zero_()
        m.lm_head.weight[0].zero_()
    return m


def _set_exact_draft(m: DeepSeekV3) -> None:
    """MTP module 1 computes head(norm(Emb(t_{i+1}))): exactly the main model's prediction after t_{i+1}."""
    d = m.cfg.dim
    with torch.no_grad():
        m.mtp[0].eh_proj.weight.zero_()
        m.mtp[0].eh_proj.weight[:, :d] = torch.eye(d)  # keep enorm(Emb(t_{i+1})), drop h


def test_speculative_exact_draft_accepts_all_and_zeroed_draft_none():
    m = _bigram_model()
    prompt = torch.tensor([[5, 17, 3, 99]])
    ref = m.generate(prompt, 12)
    assert not (ref[:, 4:] == 0).any()  # token 0 is never the right continuation
    _set_exact_draft(m)
    out, stats = m.generate_speculative(prompt, 12)
    assert torch.equal(out, ref)
    assert stats["drafted"] > 0 and stats["acceptance_rate"] == 1.0 and stats["accepted"] == stats["drafted"]
    assert stats["main_forwards"] < 12  # accepted drafts save main-model calls
    with torch.no_grad():
        for p in m.mtp.parameters():
            p.zero_()  # zeroed MTP: constant logits 0, draft = token 0, always wrong
    out, stats = m.generate_speculative(prompt, 12)
    assert torch.equal(out, ref)
    assert stats["drafted"] > 0 and stats["acceptance_rate"] == 0.0 and stats["accepted"] == 0


def test_bad_token_ids_raise(tiny_model):
    with pytest.raises(ValueError, match=r"vocab_size=128"):
        tiny_model(torch.tensor([[1, 128]]))
    with pytest.raises(ValueError, match="-1"):
        tiny_model(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match="integer tensor"):
        tiny_model(torch.randn(1, 3))
    with pytest.raises(ValueError, match="labels"):
        tiny_model(torch.tensor([[1, 2]]), labels=torch.tensor([[1, 200]]))


def test_update_expert_bias_all_layers(tiny_cfg):
    torch.manual_seed(0)
    m = DeepSeekV3(tiny_cfg).train()
    x = torch.randint(0, 128, (2, 16))
    m(x[:, :-1], labels=x[:, 1:])
    loads = m.update_expert_bias()
    assert len(loads) == len(m.gates()) == tiny_cfg.n_moe_layers + tiny_cfg.n_mtp
    assert int(loads[0].sum()) == 2 * 15 * tiny_cfg.n_activated_experts
    assert any(float(g.e_score_correction_bias.abs().sum()) > 0 for g in m.gates())


def test_determinism_under_seed(tiny_cfg):
    torch.manual_seed(3)
    a = DeepSeekV3(tiny_cfg)
    torch.manual_seed(3)
    b = DeepSeekV3(tiny_cfg)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), n
