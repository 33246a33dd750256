import math

import pytest
import torch
from deepseek_moe import functional as Fn


def test_rope_interleaved_equals_complex_rotation():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 8)
    inv = Fn.yarn_inv_freq(8, 10000.0)
    cos, sin = Fn.rope_cos_sin(torch.arange(5), inv)
    a = Fn.apply_rope_interleaved(x, cos[None], sin[None])
    b = Fn.apply_rope_complex_reference(x, cos[None], sin[None])
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    # rotations preserve the norm of each pair
    torch.testing.assert_close(a.pow(2).sum(-1), x.pow(2).sum(-1), atol=1e-5, rtol=1e-5)


def test_rope_relative_position_property():
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)
    inv = Fn.yarn_inv_freq(8, 10000.0)

    def dot(i, j):
        ci, si = Fn.rope_cos_sin(torch.tensor([i]), inv)
        cj, sj = Fn.rope_cos_sin(torch.tensor([j]), inv)
        return (Fn.apply_rope_interleaved(q[None, None], ci[None], si[None])
                * Fn.apply_rope_interleaved(k[None, None], cj[None], sj[None])).sum()

    assert dot(7, 3) == pytest.approx(float(dot(14, 10)), abs=1e-4)


def test_yarn_keeps_high_and_divides_low_frequencies():
    base = Fn.yarn_inv_freq(64, 10000.0)
    y = Fn.yarn_inv_freq(64, 10000.0, factor=40, original_seq_len=4096, beta_fast=32, beta_slow=1, yarn=True)
    assert torch.allclose(y[:5], base[:5])  # fast-rotating dims kept
    assert torch.allclose(y[-3:], base[-3:] / 40)  # slow dims interpolated by the factor
    assert (y <= base + 1e-12).all()


def test_route_hand_computed():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0, 1.0, -2.0, 3.0, 0.1]])
    w, idx, s = Fn.route(logits, torch.zeros(8), topk=2, n_groups=2, topk_groups=1, route_scale=2.5)
    # group scores (top-2 sums of sigmoid): group0 {0..3}: s0+s2, group1 {4..7}: s6+s4 -> group1 wins
    assert sorted(idx[0].tolist()) == [4, 6]
    expect = torch.sigmoid(torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(w[0].sort(descending=True)[0], 2.5 * expect / expect.sum())


def test_bias_changes_selection_not_weights():
    torch.manual_seed(0)
    logits = torch.randn(64, 8)
    bias = torch.zeros(8)
    bias[3] = 10.0  # expert 3 always selected
    w, idx, s = Fn.route(logits, bias, topk=2)
    assert (idx == 3).any(1).all()
    torch.testing.assert_close(w, s.gather(1, idx) / s.gather(1, idx).sum(-1, keepdim=True))


def test_group_limit_respected():
    torch.manual_seed(0)
    logits = torch.randn(500, 16)
    _, idx, _ = Fn.route(logits, torch.randn(16) * 0.1, topk=4, n_groups=4, topk_groups=2)
    groups = idx // 4
    assert all(len(set(g.tolist())) <= 2 for g in groups)


def test_softmax_route_without_bias_uses_group_max():
    torch.manual_seed(0)
    w, idx, s = Fn.route(torch.randn(10, 8), None, topk=2, score_func="softmax", norm_topk_prob=False)
    torch.testing.assert_close(s.sum(-1), torch.ones(10))
    torch.testing.assert_close(w, s.gather(1, idx))


def test_bias_update_sign_rule_and_maxvio():
    b = torch.zeros(4)
    Fn.bias_update(b, torch.tensor([10.0, 0.0, 5.0, 5.0]), 0.001)
    torch.testing.assert_close(b, torch.tensor([-0.001, 0.001, 0.0, 0.0]))
    assert float(Fn.max_violation(torch.tensor([10.0, 0.0, 5.0, 5.0]))) == pytest.approx(1.0)
    assert float(Fn.max_violation(torch.tensor([3.0, 3.0]))) == 0.0


def test_sequence_balance_loss_uniform_value():
    # perfectly balanced routing and uniform affinities: sum_i f_i P_i = sum_i 1 * 1/E = 1
    E, S = 4, 8
    scores = torch.full((S, E), 0.5, requires_grad=True)
    idx = torch.tensor([[0, 1], [2, 3]] * (S // 2))
    loss = Fn.sequence_balance_loss(scores, idx, batch=1, alpha=1.0)
    assert loss.detach().item() == pytest.approx(1.0)
    loss.backward()
    assert scores.grad is not None
    assert Fn.batch_balance_loss(scores.detach(), idx, alpha=1.0).item() == pytest.approx(1.0)


def test_sequence_loss_is_per_sequence():
    # two sequences, each fully collapsed on a different expert: batch-wise balanced, sequence-wise not
    E = 2
    scores = torch.tensor([[0.9, 0.1]] * 4 + [[0.1, 0.9]] * 4)
    idx = torch.tensor([[0]] * 4 + [[1]] * 4)
    seq = Fn.sequence_balance_loss(scores, idx, batch=2, alpha=1.0)
    bat = Fn.batch_balance_loss(scores, idx, alpha=1.0)
    assert float(seq) == pytest.approx(2 * 0.9)
    assert float(bat) == pytest.approx(1.0)
    assert E == scores.shape[1]


def test_mla_absorbed_equals_naive():
    torch.manual_seed(0)
    B, S, H, dn, dv, C, R = 2, 6, 3, 8, 5, 12, 4
    args = (torch.randn(B, S, H, dn), torch.randn(B, S, H, R), torch.randn(B, S, C), torch.randn(B, S, R),
            torch.randn(H * (dn + dv), C))
    mask = Fn.causal_mask(S, S, 0)
    a = Fn.mla_naive(*args, 0.3, mask)
    b = Fn.mla_absorbed(*args, 0.3, mask)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_causal_mask_offsets():
    m = Fn.causal_mask(2, 5, 3)
    assert torch.isinf(m[0, 4]) and m[0, 3] == 0 and m[1, 4] == 0
    assert math.isinf(float(Fn.causal_mask(3, 3, 0)[0, 1]))


def test_mtp_targets_alignment():
    labels = torch.arange(1, 9)[None]  # t_1..t_8 for inputs t_0..t_7
    emb, tgt = Fn.mtp_targets(labels, 1)
    assert emb.tolist() == [[1, 2, 3, 4, 5, 6, 7]] and tgt.tolist() == [[2, 3, 4, 5, 6, 7, 8]]
    emb, tgt = Fn.mtp_targets(labels, 2)
    assert emb.tolist() == [[2, 3, 4, 5, 6, 7]] and tgt.tolist() == [[3, 4, 5, 6, 7, 8]]
