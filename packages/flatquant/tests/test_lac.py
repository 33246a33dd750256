"""Learnable activation clipping (LAC) against the official FlatQuant code's semantics (ruikangliu/FlatQuant,
``quant_utils.ActivationQuantizer.get_scale_zero`` and ``flat_linear.FlatQuantizedLinear``), recomputed here
independently in plain Python floats, one token at a time, from the official order of operations.

Official, per token (symmetric, the released scripts): ``xmax = max(max(x), 0)``, ``xmin = min(min(x), 0)``; LAC
scales them by ``sigmoid(c_max)``, ``sigmoid(c_min)``; ``scale = max(|xmin|, xmax) / 7`` (1 where that is 0);
codes ``clamp(round(x / scale), -8, 7)``, so the clipped range is ``[-8 scale, 7 scale]``. Every
``FlatQuantizedLinear`` owns its ``ActivationQuantizer``: q, k and v (and gate, up) quantize the same
transformed input each with its own clip pair.
"""

from __future__ import annotations

import math

import pytest
import torch
from flatquant import FlatQuantConfig
from flatquant import functional as FQ
from flatquant.modules import ActQuantizer, InputQuantizer, make_input_quantizers


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def official_token(row: list[float], c_max: float, c_min: float, bits: int = 4):
    """One token through the official get_scale_zero (sym, lac) + sym_quant_dequant: (scale, codes, values)."""
    xmax = max(max(row), 0.0) * _sigmoid(c_max)
    xmin = min(min(row), 0.0) * _sigmoid(c_min)
    maxq = 2 ** (bits - 1) - 1
    absmax = max(abs(xmin), xmax)
    scale = absmax / maxq if absmax != 0 else 1.0
    codes = [int(min(max(float(round(v / scale)), -(maxq + 1)), maxq)) for v in row]  # round: half to even
    return scale, codes, [c * scale for c in codes]


X = [[-4.0, -1.0, 0.5, 2.0, 3.0, -0.25],
     [0.8, 0.2, 0.3, 0.4, 0.5, 0.6],  # all positive: the range is [0, c_max max], not [c_min min, c_max max]
     [-3.0, 2.5, -0.7, 0.0, 1.2, -2.2],
     [-0.5, -0.2, -0.1, -0.05, -0.3, -0.4],  # all negative
     [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]  # all zero: scale 1
LOGITS = [(0.0, 0.0), (-2.0, 4.0), (4.0, -1.0), (1.0, -3.0), (0.5, 0.5)]  # (c_max, c_min) per case


def _act_quantizer(c_max: float, c_min: float) -> ActQuantizer:
    q = ActQuantizer(4, sym=True, lac=True).double()
    with torch.no_grad():
        q.clip_max.fill_(c_max)
        q.clip_min.fill_(c_min)
    return q


def test_hand_computed_token():
    # sigmoid(0) = 0.5 both sides: range [-2, 1.5], scale 2 / 7, the clipped range [-16/7, 2]
    scale, codes, _ = official_token(X[0], 0.0, 0.0)
    assert math.isclose(scale, 2 / 7) and codes == [-8, -4, 2, 7, 7, -1]  # -3.5 -> -4 (half to even); 3.0 -> 7


@pytest.mark.parametrize("case", range(len(X)))
def test_act_quantizer_matches_the_official_scale_and_clipped_range(case):
    c_max, c_min = LOGITS[case]
    x = torch.tensor([X[case]], dtype=torch.float64)
    q = _act_quantizer(c_max, c_min)
    s_ref, codes_ref, v_ref = official_token(X[case], c_max, c_min)
    ratio_max, ratio_min = q.ratios()
    scale = FQ.sym_scale(x, 4, ratio_max, ratio_min).detach()
    codes, _ = FQ.quantize_sym(x, 4, ratio_max, ratio_min)
    fake = q(x).detach()
    assert math.isclose(float(scale), s_ref, rel_tol=1e-12)
    assert codes[0].tolist() == codes_ref
    torch.testing.assert_close(fake[0], torch.tensor(v_ref, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    # the clipped range: every value inside [-8 scale, 7 scale], entries beyond it saturate at its ends
    assert float(fake.min()) >= -8 * s_ref - 1e-12 and float(fake.max()) <= 7 * s_ref + 1e-12
    for v, f in zip(X[case], fake[0].tolist()):
        if v > 7 * s_ref:
            assert math.isclose(f, 7 * s_ref)
        if v < -8 * s_ref:
            assert math.isclose(f, -8 * s_ref)


def test_lac_gradient_reaches_both_clip_factors():
    q = _act_quantizer(1.0, 1.0)
    x = torch.tensor(X[:3], dtype=torch.float64)
    (q(x) - x).pow(2).sum().backward()
    assert q.clip_max.grad.abs() > 0 and q.clip_min.grad.abs() > 0


# ----------------------------------------------------------------------------- one pair per linear (official)

LOGIT_SETS = {"q_proj": (0.3, 2.0), "k_proj": (-1.0, 0.5), "v_proj": (2.5, -0.4), "gate_proj": (-0.7, 1.5),
              "up_proj": (1.2, -1.1)}


def _quantized_tiny_llama(tiny_llama, ids, scope):
    import flatquant as fq

    cfg = FlatQuantConfig(epochs=0, nsamples=4, seqlen=12, batch_size=2, lac_scope=scope)
    fq.quantize_(tiny_llama, cfg, ids, progress=False)
    return tiny_llama


def _set_logits(layer, per_linear: bool):
    a, m = layer.self_attn, layer.mlp
    slots = [(a.qkv_in, ["q_proj", "k_proj", "v_proj"]), (m.upgate_in, ["gate_proj", "up_proj"])]
    with torch.no_grad():
        for iq, names in slots:
            assert len(iq.quantizers) == (len(names) if per_linear else 1)
            for q, name in zip(iq.quantizers, names):
                q.clip_max.fill_(LOGIT_SETS[name][0])
                q.clip_min.fill_(LOGIT_SETS[name][1])


def _capture_inputs(layer, ids_model, model):
    """Inputs of q/k/v/gate/up and of the two input paths (the pre-transform activations)."""
    a, m = layer.self_attn, layer.mlp
    seen = {}
    mods = {"q_proj": a.q_proj, "k_proj": a.k_proj, "v_proj": a.v_proj, "gate_proj": m.gate_proj,
            "up_proj": m.up_proj, "qkv_in": a.qkv_in, "upgate_in": m.upgate_in}
    hooks = [mod.register_forward_pre_hook(lambda _m, args, k=k: seen.setdefault(k, args[0])) for k, mod in mods.items()]
    try:
        with torch.no_grad():
            model(ids_model)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _official_rows(y: torch.Tensor, c_max: float, c_min: float):
    rows = y.reshape(-1, y.shape[-1]).tolist()
    out = [official_token(r, c_max, c_min) for r in rows]
    return [s for s, _, _ in out], [v for _, _, v in out]


def test_each_linear_quantizes_the_shared_input_with_its_own_clip_pair(tiny_llama, ids):
    model = _quantized_tiny_llama(tiny_llama.double(), ids, "linear")
    layer = model.model.layers[1]
    _set_logits(layer, per_linear=True)
    seen = _capture_inputs(layer, ids[:2], model)
    a, m = layer.self_attn, layer.mlp
    for path, iq, names in (("qkv_in", a.qkv_in, ["q_proj", "k_proj", "v_proj"]),
                            ("upgate_in", m.upgate_in, ["gate_proj", "up_proj"])):
        with torch.no_grad():
            y = iq.transform(seen[path])  # the transformed input, before any quantization
        for name in names:
            _, v_ref = _official_rows(y, *LOGIT_SETS[name])
            got = seen[name].reshape(-1, y.shape[-1])
            # float32 clip logits (sigmoid in float32): agreement to float32 precision
            torch.testing.assert_close(got, torch.tensor(v_ref, dtype=got.dtype), rtol=1e-6, atol=1e-6)
        assert not torch.equal(seen[names[0]], seen[names[1]])  # distinct pairs give distinct inputs


def test_input_scope_shares_one_pair(tiny_llama, ids):
    model = _quantized_tiny_llama(tiny_llama.double(), ids, "input")
    layer = model.model.layers[0]
    _set_logits(layer, per_linear=False)  # the one pair is q_proj's / gate_proj's logits
    seen = _capture_inputs(layer, ids[:2], model)
    with torch.no_grad():
        y = layer.self_attn.qkv_in.transform(seen["qkv_in"])
    _, v_ref = _official_rows(y, *LOGIT_SETS["q_proj"])
    for name in ("q_proj", "k_proj", "v_proj"):
        torch.testing.assert_close(seen[name].reshape(-1, y.shape[-1]), torch.tensor(v_ref, dtype=torch.float64),
                                   rtol=1e-6, atol=1e-6)


def test_deployed_codes_use_each_linears_clip_pair(tiny_llama, ids):
    """After reparameterize, q/k/v get integer activations whose scales are the official ones of their own pair."""
    import flatquant as fq

    model = _quantized_tiny_llama(tiny_llama, ids, "linear")
    layer = model.model.layers[0]
    _set_logits(layer, per_linear=True)
    fq.reparameterize(model)
    seen = _capture_inputs(layer, ids[:1], model)
    t = layer.self_attn.qkv_in.transform
    p1, p2 = (p.double() for p in t.matrices())
    x = seen["qkv_in"].double().reshape(-1, p1.shape[0] * p2.shape[0])
    y = x @ torch.kron(p1, p2)  # x (P1 (x) P2), independently of kronecker_matmul
    for name in ("q_proj", "k_proj", "v_proj"):
        s_ref, _ = _official_rows(y, *LOGIT_SETS[name])
        qact = seen[name]
        torch.testing.assert_close(qact.scale.reshape(-1).double(), torch.tensor(s_ref, dtype=torch.float64),
                                   rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="lac_scope"):
        FlatQuantConfig(lac_scope="row")
    with pytest.raises(ValueError, match="quantizer: expected an ActQuantizer"):
        InputQuantizer(None, [])
    with pytest.raises(ValueError, match="quantizer: expected an ActQuantizer"):
        InputQuantizer(None, torch.nn.Identity())
    with pytest.raises(ValueError, match="quantizer: expected quantizers of one bit width"):
        InputQuantizer(None, [ActQuantizer(4, True), ActQuantizer(8, True)])
    with pytest.raises(ValueError, match="consumers"):
        make_input_quantizers(FlatQuantConfig(), 0)
    iq = InputQuantizer(None, make_input_quantizers(FlatQuantConfig(), 3))
    with pytest.raises(ValueError, match="n: expected 3"):
        iq.outputs(torch.zeros(2, 4), 2)
    with pytest.raises(ValueError, match="n: expected a positive int"):
        iq.outputs(torch.zeros(2, 4), 0)


def test_quantizer_counts_per_scope():
    assert len(make_input_quantizers(FlatQuantConfig(), 3)) == 3  # the official default: one per linear
    assert len(make_input_quantizers(FlatQuantConfig(lac_scope="input"), 3)) == 1
    assert len(make_input_quantizers(FlatQuantConfig(lac=False), 3)) == 1  # identical without LAC: shared
    assert len(make_input_quantizers(FlatQuantConfig(method="quarot"), 3)) == 1
