import pytest
import torch
from vnm_sparse.config import VNMConfig
from vnm_sparse.functional import vnm_mask
from vnm_sparse.modules import collect_act_norms
from vnm_sparse.permute import optimise_space, permute_model_, vnm_permute


def _retained(s, v, m):
    return float((s * vnm_mask(s, v, 2, m, score=s, pad=True)).sum())


@pytest.mark.parametrize("v,m", [(8, 5), (16, 8)])
def test_vnm_permute_raises_retained_and_is_a_permutation(v, m):
    torch.manual_seed(0)
    w = torch.randn(64, 40) * torch.rand(1, 40) * torch.rand(64, 1)  # channel-wise structure
    po, pi, st = vnm_permute(w, v, m)
    assert sorted(po.tolist()) == list(range(64)) and sorted(pi.tolist()) == list(range(40))
    assert st["after"] > st["before"]
    assert st["after"] == pytest.approx(_retained(w.abs()[po][:, pi], v, m), rel=1e-6)
    assert st["before"] == pytest.approx(_retained(w.abs(), v, m), rel=1e-6)


def test_optimise_space_never_decreases():
    torch.manual_seed(1)
    s = {"a": torch.rand(32, 20), "b": torch.rand(20, 16)}
    perm, before, after = optimise_space(s, [("a", 1), ("b", 0)], 20, 4, 5, iters=2)
    assert after >= before
    assert after == pytest.approx(_retained(s["a"][:, perm], 4, 5) + _retained(s["b"][perm], 4, 5), rel=1e-6)


def test_optimise_space_checks_sizes():
    with pytest.raises(ValueError, match="expected size 20"):
        optimise_space({"a": torch.rand(8, 10)}, [("a", 1)], 20, 4, 5)


def test_vit_permutation_keeps_function():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    m = tv.models.VisionTransformer(image_size=28, patch_size=7, num_layers=2, num_heads=4, hidden_dim=40,
                                    mlp_dim=80, num_classes=10)
    m.eval()
    x = torch.randn(3, 3, 28, 28)
    y0 = m(x)
    w0 = m.encoder.layers[0].mlp[0].weight.clone()
    rep = permute_model_(m, VNMConfig(v=8, m=5, pad=True), iters=1)
    assert any(r["after"] > r["before"] for r in rep.values())
    assert not torch.equal(w0, m.encoder.layers[0].mlp[0].weight)
    torch.testing.assert_close(m(x), y0, rtol=1e-4, atol=1e-4)


def test_llama_permutation_keeps_function_with_ria():
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=80, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    m = tf.LlamaForCausalLM(cfg).eval()
    x = torch.randint(0, 64, (2, 12))
    y0 = m(x).logits
    vnm = VNMConfig(v=16, m=5, score="ria", pad=True)
    rep = permute_model_(m, vnm, act_norms=collect_act_norms(m, [x]), iters=1)
    assert set(rep) == {"residual", "model.layers.0.mlp"}
    torch.testing.assert_close(m(x).logits, y0, rtol=1e-4, atol=1e-4)
