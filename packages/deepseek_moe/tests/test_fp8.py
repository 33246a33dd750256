import pytest
import torch
from deepseek_moe.fp8 import (
    FP8Linear,
    act_dequant,
    act_quant,
    fp8_gemm,
    fp8_gemm_reference,
    quantize_model_fp8,
    weight_dequant,
    weight_quant,
)


def test_act_quant_round_trip_and_scale_shape():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 256) * 3
    q, s = act_quant(x)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (3, 5, 2)
    back = act_dequant(q, s)
    rel = (back - x).abs() / x.abs().clamp_min(1e-3)
    assert rel[x.abs() > 0.1].max() < 0.07  # e4m3: 3-bit mantissa, relative step 2^-3 -> error <= 6.25%
    torch.testing.assert_close(s, x.unflatten(-1, (2, 128)).abs().amax(-1) / 448)


def test_ue8m0_scales_are_powers_of_two():
    x = torch.randn(4, 128)
    _, s = act_quant(x, scale_fmt="ue8m0")
    torch.testing.assert_close(torch.exp2(torch.log2(s).round()), s)
    assert (s >= x.abs().amax(-1, keepdim=True) / 448).all()


def test_weight_quant_ragged_blocks():
    torch.manual_seed(0)
    w = torch.randn(200, 300)
    q, s = weight_quant(w)
    assert s.shape == (2, 3)
    back = weight_dequant(q, s)
    assert ((back - w).abs() / w.abs().amax()).max() < 2 ** -4
    with pytest.raises(ValueError, match=r"needs scales of shape \(2, 3\)"):
        weight_dequant(q, s[:1])


def test_fp8_gemm_reference_close_to_full_precision():
    torch.manual_seed(0)
    a, b = torch.randn(33, 256), torch.randn(130, 256)
    (aq, as_), (bq, bs) = act_quant(a), weight_quant(b)
    c = fp8_gemm(aq, as_, bq, bs, backend="torch", out_dtype=torch.float32)
    ref = a @ b.t()
    assert (c - ref).norm() / ref.norm() < 0.05
    torch.testing.assert_close(c, act_dequant(aq, as_) @ weight_dequant(bq, bs).t())


def test_fp8_gemm_validates_inputs():
    a, s = act_quant(torch.randn(4, 128))
    b, bs = weight_quant(torch.randn(8, 128))
    with pytest.raises(ValueError, match="a_s expected shape"):
        fp8_gemm(a, torch.cat([s, s], 1), b, bs)
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        fp8_gemm(a.float(), s, b, bs)
    with pytest.raises(ValueError, match="multiple of block"):
        act_quant(torch.randn(2, 100))


def test_fp8_linear_and_model_quantization(tiny_cfg):
    from deepseek_moe import DeepSeekV3

    torch.manual_seed(0)
    cfg = tiny_cfg.replace(dim=128, inter_dim=128, moe_inter_dim=128, q_lora_rank=128, kv_lora_rank=128,
                           n_heads=8, v_head_dim=16)
    m = DeepSeekV3(cfg).eval()
    x = torch.randint(0, 128, (1, 12))
    ref = m(x).logits.softmax(-1)
    quantize_model_fp8(m)
    assert isinstance(m.layers[0].self_attn.q_b_proj, FP8Linear)
    assert not isinstance(m.lm_head, FP8Linear)
    out = m(x).logits.softmax(-1)
    assert (out - ref).abs().max() < 0.05
    lin = torch.nn.Linear(256, 64, bias=False)
    f = FP8Linear.from_linear(lin, gemm_impl="bf16")
    y = torch.randn(3, 256)
    assert ((f(y) - lin(y)).norm() / lin(y).norm()) < 0.05
    with pytest.raises(ValueError, match="multiple of block"):
        FP8Linear(100, 10)


def test_reference_is_scale_exact():
    """Per-block rescaling equals dequantize-then-multiply when K spans several blocks."""
    torch.manual_seed(1)
    a, b = torch.randn(5, 384) * torch.tensor([1.0, 100.0, 0.01]).repeat_interleave(128), torch.randn(7, 384)
    (aq, as_), (bq, bs) = act_quant(a), weight_quant(b)
    c = fp8_gemm_reference(aq, as_, bq, bs, out_dtype=torch.float32)
    manual = sum((aq.float()[:, k * 128:(k + 1) * 128] * as_[:, k:k + 1])
                 @ (bq.float()[:, k * 128:(k + 1) * 128] * bs[0, k]).t() for k in range(3))
    torch.testing.assert_close(c, manual, rtol=1e-5, atol=1e-4)
