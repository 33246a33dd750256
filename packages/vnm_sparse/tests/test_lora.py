import itertools

import pytest
import torch
from vnm_sparse.config import ThreeStageLoRAConfig, VNMConfig
from vnm_sparse.functional import check_vnm
from vnm_sparse.lora import three_stage_lora
from vnm_sparse.modules import collect_act_norms, prunable_weights

tf = pytest.importorskip("transformers")
pytest.importorskip("peft")


def _tiny():
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    return tf.LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("mode", ["three_stage", "fixed"])
def test_three_stage_lora_runs_and_ends_sparse(mode):
    m = _tiny()
    x = torch.randint(0, 64, (2, 12))
    vnm = VNMConfig(v=16, m=8, score="ria")
    norms = collect_act_norms(m, [x])
    cfg = ThreeStageLoRAConfig(total_steps=8, dense_frac=0.25, dynamic_frac=0.5, mask_interval=1, rank=4, lr=5e-3)
    out, masks, hist = three_stage_lora(m, vnm, cfg, itertools.repeat(x), lambda mod, b: mod(input_ids=b, labels=b).loss,
                                        act_norms=norms, mode=mode, progress=False)
    assert type(out).__name__ == "LlamaForCausalLM"
    assert not any("lora" in n for n, _ in out.named_parameters())
    for key, (mod, p) in prunable_weights(out).items():
        w = getattr(mod, p)
        check_vnm(w != 0, 16, 2, 8)
        assert torch.equal(w != 0, masks[key] & (w != 0))
    if mode == "three_stage":
        assert hist.stage == [1, 1, 2, 2, 2, 2, 3, 3]
        assert [s for s, _ in hist.mask_change] == [2, 3, 4, 5]
    else:
        assert hist.stage == [3] * 8 and hist.mask_change == []
    assert hist.loss[-1] < hist.loss[0]


def test_sparse_forward_uses_masked_merged_weight():
    """In stage 3 the wrapped layer computes x ((W + sBA) * Mask)^T exactly."""
    m = _tiny()
    x = torch.randint(0, 64, (1, 6))
    vnm = VNMConfig(v=16, m=8)
    cfg = ThreeStageLoRAConfig(total_steps=2, dense_frac=0.0, dynamic_frac=0.0, rank=2, lr=1e-2)
    out, masks, _ = three_stage_lora(m, vnm, cfg, itertools.repeat(x), lambda mod, b: mod(input_ids=b, labels=b).loss,
                                     mode="fixed", progress=False)
    for key, (mod, p) in prunable_weights(out).items():
        assert ((getattr(mod, p) != 0) <= masks[key]).all()


def test_bad_mode_and_targets():
    m = _tiny()
    with pytest.raises(ValueError, match="mode"):
        three_stage_lora(m, VNMConfig(v=16, m=8), ThreeStageLoRAConfig(total_steps=1), iter([]), None, mode="x")


@pytest.mark.parametrize("bias", [False, True])
def test_masked_lora_linear_matches_autograd_reference(bias):
    """The hand-written backward gives autograd's output and gradients for x, W, A, B and the bias."""
    from vnm_sparse.lora import MaskedLoRALinear, masked_lora_linear_reference

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 12, generator=g, dtype=torch.float64)
    w = torch.randn(8, 12, generator=g, dtype=torch.float64)
    a, b = torch.randn(3, 12, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    mask = (torch.rand(8, 12, generator=g) > 0.5).double()
    bb = torch.randn(8, generator=g, dtype=torch.float64) if bias else None
    ins = [t.clone().requires_grad_() for t in (x, w, a, b)] + ([bb.clone().requires_grad_()] if bias else [])
    refs = [t.clone().requires_grad_() for t in (x, w, a, b)] + ([bb.clone().requires_grad_()] if bias else [])
    gy = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    y = MaskedLoRALinear.apply(*ins[:4], mask, 2.0, ins[4] if bias else None)
    yr = masked_lora_linear_reference(*refs[:4], mask, 2.0, refs[4] if bias else None)
    torch.testing.assert_close(y, yr)
    (y * gy).sum().backward()
    (yr * gy).sum().backward()
    for t, r in zip(ins, refs, strict=True):
        torch.testing.assert_close(t.grad, r.grad)
    assert torch.autograd.gradcheck(lambda *t: MaskedLoRALinear.apply(*t[:4], mask, 2.0, t[4] if bias else None),
                                    tuple(i.detach().requires_grad_() for i in ins))


def test_lora_step_fast_path_equals_reference_path():
    """A fixed-mask run through the fast path ends with the same weights as through the autograd expression."""
    import vnm_sparse.lora as L

    x = torch.randint(0, 64, (2, 12))
    cfg = ThreeStageLoRAConfig(total_steps=3, dense_frac=0.0, dynamic_frac=0.0, rank=4, lr=5e-3)
    loss = lambda mod, b: mod(input_ids=b, labels=b).loss
    fast, _, hf = three_stage_lora(_tiny(), VNMConfig(v=16, m=8), cfg, itertools.repeat(x), loss, mode="fixed",
                                   progress=False)
    apply = L.MaskedLoRALinear.apply
    try:
        L.MaskedLoRALinear.apply = L.masked_lora_linear_reference
        ref, _, hr = three_stage_lora(_tiny(), VNMConfig(v=16, m=8), cfg, itertools.repeat(x), loss, mode="fixed",
                                      progress=False)
    finally:
        L.MaskedLoRALinear.apply = apply
    assert hf.loss == pytest.approx(hr.loss, rel=1e-5)
    for (n, p), (_, q) in zip(fast.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)
