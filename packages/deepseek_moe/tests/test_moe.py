import pytest
import torch
from deepseek_moe import DeepSeekV3Config
from deepseek_moe import functional as Fn
from deepseek_moe.modules.moe import Experts, Gate, MoE


def _moe(**kw):
    torch.manual_seed(0)
    cfg = DeepSeekV3Config.preset("tiny", **kw)
    m = MoE(cfg)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return cfg, m


@pytest.mark.parametrize("kw", [{}, dict(n_routed_experts=16, n_expert_groups=4, n_limited_groups=2,
                                         n_activated_experts=4), dict(score_func="softmax", use_expert_bias=False)])
def test_sorted_dispatch_equals_reference_forward_and_backward(kw):
    cfg, m = _moe(**kw)
    x = torch.randn(3, 10, cfg.dim, requires_grad=True)
    y1, _ = m(x)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    grads1 = [x.grad.clone()] + [p.grad.clone() for p in m.parameters()]
    x.grad = None
    m.zero_grad()
    m.experts.impl = "reference"
    y2, _ = m(x)
    (y2 * g).sum().backward()
    grads2 = [x.grad] + [p.grad for p in m.parameters()]
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads1, grads2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_experts_handle_empty_experts():
    cfg, m = _moe()
    x = torch.randn(4, cfg.dim)
    idx = torch.tensor([[0, 1]] * 4)
    w = torch.ones(4, 2)
    torch.testing.assert_close(m.experts.forward_sorted(x, w, idx),
                               Fn.swiglu_experts_reference(x, w, idx, m.experts.gate_up_proj, m.experts.down_proj))
    m.experts.impl = "bogus"
    with pytest.raises(ValueError, match="Experts.impl"):
        m.experts(x, w, idx)


def test_gate_counts_and_bias_update():
    cfg, m = _moe()
    m.train()
    x = torch.randn(2, 16, cfg.dim)
    m(x)
    m(x)
    counts = m.gate.load_accum.clone()
    assert counts.sum() == 2 * 2 * 16 * cfg.n_activated_experts
    load = m.gate.update_bias()
    torch.testing.assert_close(load, counts)
    expect = cfg.bias_update_rate * torch.sign(counts.mean() - counts)
    torch.testing.assert_close(m.gate.e_score_correction_bias, expect)
    assert m.gate.load_accum.sum() == 0
    assert not m.gate.e_score_correction_bias.requires_grad


def test_eval_does_not_accumulate_and_aux_only_in_training():
    cfg, m = _moe(aux_loss_alpha=0.01)
    m.eval()
    _, aux = m(torch.randn(1, 8, cfg.dim))
    assert m.gate.load_accum.sum() == 0 and float(aux) == 0.0
    m.train()
    _, aux = m(torch.randn(1, 8, cfg.dim))
    assert aux.item() > 0


def test_bias_balances_a_skewed_router():
    """The sign rule alone drives MaxVio of a collapsed router toward 0 (no gradients involved)."""
    torch.manual_seed(0)
    cfg = DeepSeekV3Config.preset("tiny", n_expert_groups=1, n_limited_groups=1)
    g = Gate(cfg)
    with torch.no_grad():
        g.weight.normal_(0, 0.02)
        g.weight[0] += 0.5  # expert 0 attracts everything
    g.train()
    x = torch.randn(512, cfg.dim) + 1.0
    g(x)
    start = float(Fn.max_violation(g.update_bias(rate=0.0)))
    for _ in range(300):
        g(x)
        g.update_bias(rate=0.01)
    g(x)
    end = float(Fn.max_violation(g.update_bias(rate=0.0)))
    assert start > 1.0 and end < 0.3 * start


def test_experts_layout():
    cfg = DeepSeekV3Config.preset("tiny")
    e = Experts(cfg)
    assert e.gate_up_proj.shape == (8, 64, 64) and e.down_proj.shape == (8, 64, 32)
