import copy

import flatquant as fq
import pytest
import torch
from flatquant.modules import QuantLinear

LOSSLESS = dict(w_bits=16, a_bits=16, k_bits=16, v_bits=16, epochs=0, nsamples=4, seqlen=12, batch_size=2)


def _logits(m, ids):
    with torch.no_grad():
        out = m(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _perturb(model):
    """Move the transforms away from their init so the lossless test is not trivially orthogonal."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("sigma", "diag")):
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) + 0.5)
            elif name.endswith(("a_u", "a_v")):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_bert"])
@pytest.mark.parametrize("method", ["flatquant", "quarot", "smoothquant"])
def test_transforms_are_lossless_without_quantization(arch, method, ids, request):
    """With quantizers off, transformed and reparameterised models equal the original (fp64)."""
    model = request.getfixturevalue(arch).double()
    ref = _logits(model, ids)
    fq.quantize_(model, fq.FlatQuantConfig(method=method, **LOSSLESS), ids, progress=False)
    _perturb(model)  # frozen matrices are buffers now: only diags move, still a strong check
    torch.testing.assert_close(_logits(model, ids), ref, atol=1e-9, rtol=1e-9)
    fq.reparameterize(model)
    torch.testing.assert_close(_logits(model, ids), ref, atol=1e-9, rtol=1e-9)


def test_svd_transforms_lossless_while_learnable(tiny_llama, ids):
    """The learnable (unfrozen) path: perturb U, V, sigma, diag before calibration freezes them."""
    from flatquant import api, llama

    model = tiny_llama.double()
    ref = _logits(model, ids)
    cfg = fq.FlatQuantConfig(**LOSSLESS)
    gen = torch.Generator().manual_seed(0)
    for i, layer in enumerate(llama.layers(model)):
        llama.wrap_layer(layer, cfg, gen, f"layers.{i}")
    model.double()
    _perturb(model)
    torch.testing.assert_close(_logits(model, ids), ref, atol=1e-9, rtol=1e-9)
    setattr(model, api._STATE, {"config": cfg.to_dict(), "deployed": False})
    fq.reparameterize(model)
    torch.testing.assert_close(_logits(model, ids), ref, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("method", ["rtn", "smoothquant", "quarot", "flatquant"])
def test_w4a4_llama_runs_and_deploys(tiny_llama, ids, method):
    model = tiny_llama
    ref = _logits(model, ids)
    report = fq.quantize_(model, fq.FlatQuantConfig(method=method, epochs=2, nsamples=4, seqlen=12, batch_size=2), ids,
                          progress=False)
    assert len(report.layers) == 2 and all(r["mse"] > 0 for r in report.layers)
    fake = _logits(model, ids)
    assert not torch.allclose(fake, ref)
    fq.reparameterize(model)
    lins = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert len(lins) == 14 and all(m.deployed and m.w_packed.dtype == torch.uint8 for m in lins)
    deployed = _logits(model, ids)
    # integer deployment reproduces the fake-quantized model (up to rare rounding ties)
    assert (deployed - fake).pow(2).mean() < 0.05 * (fake - ref).pow(2).mean() + 1e-6


def test_calibration_reduces_block_loss(tiny_llama, ids):
    report = fq.quantize_(tiny_llama, fq.FlatQuantConfig(epochs=4, nsamples=4, seqlen=12, batch_size=2), ids, progress=False)
    for r in report.layers:
        assert r["loss_last_epoch"] < r["loss_first_epoch"]


def test_flatquant_beats_rtn_on_outlier_model(tiny_llama, ids):
    """Function-preserving outliers (notes, Sec. c): scale RMSNorm channels up and the matching weight columns
    down. RTN suffers, FlatQuant's transforms absorb them."""
    m = tiny_llama
    with torch.no_grad():
        for layer in m.model.layers:
            for norm, lins in ((layer.input_layernorm, ("q_proj", "k_proj", "v_proj")),
                               (layer.post_attention_layernorm, ("gate_proj", "up_proj"))):
                norm.weight[:3] *= 50
                for n in lins:
                    mod = getattr(layer.self_attn, n, None) or getattr(layer.mlp, n)
                    mod.weight[:, :3] /= 50
    ref = _logits(m, ids)
    errs = {}
    for method in ("rtn", "flatquant"):
        mm = copy.deepcopy(m)
        fq.quantize_(mm, fq.FlatQuantConfig(method=method, epochs=3, nsamples=4, seqlen=12, batch_size=2), ids, progress=False)
        errs[method] = float((_logits(mm, ids) - ref).pow(2).mean())
    assert errs["flatquant"] < errs["rtn"]


def test_bert_w4a4_and_determinism(tiny_bert, ids):
    cfg = fq.FlatQuantConfig(epochs=0, nsamples=4, seqlen=12, batch_size=2, seed=7)
    a, b = copy.deepcopy(tiny_bert), copy.deepcopy(tiny_bert)
    fq.quantize_(a, cfg, ids, progress=False)
    fq.quantize_(b, cfg, ids, progress=False)
    assert torch.equal(_logits(a, ids), _logits(b, ids))  # the seed fixes the transforms' random init
    a = copy.deepcopy(tiny_bert)
    fq.quantize_(a, fq.FlatQuantConfig(epochs=1, nsamples=4, seqlen=12, batch_size=2), ids, progress=False)
    fake = _logits(a, ids)
    fq.reparameterize(a)
    assert (_logits(a, ids) - fake).abs().max() < 0.5


def test_gptq_weight_quantizer(tiny_llama, ids):
    fq.quantize_(tiny_llama, fq.FlatQuantConfig(weight_quantizer="gptq", epochs=1, nsamples=4, seqlen=12, batch_size=2), ids,
                 progress=False)
    lin = tiny_llama.model.layers[0].self_attn.q_proj
    assert lin.fixed_weight is not None
    fake = _logits(tiny_llama, ids)
    fq.reparameterize(tiny_llama)
    torch.testing.assert_close(lin.dequantized_weight(), lin.weight_codes().float() * lin.w_scale)
    assert (_logits(tiny_llama, ids) - fake).abs().max() < 0.5


def test_save_load_roundtrip(tiny_llama, ids, tmp_path):
    fresh = copy.deepcopy(tiny_llama)
    fq.quantize_(tiny_llama, fq.FlatQuantConfig(epochs=1, nsamples=4, seqlen=12, batch_size=2), ids, progress=False)
    fq.reparameterize(tiny_llama)
    out = _logits(tiny_llama, ids)
    path = fq.save_quantized(tiny_llama, tmp_path / "q.safetensors")
    fq.load_quantized(fresh, path)
    torch.testing.assert_close(_logits(fresh, ids), out)
    assert fq.quantized_config(fresh) == fq.quantized_config(tiny_llama)


def test_bad_inputs(tiny_llama, ids):
    cfg = fq.FlatQuantConfig(epochs=0, nsamples=4, seqlen=12, batch_size=2)
    with pytest.raises(ValueError, match="expected at least FlatQuantConfig.nsamples=4 rows, got 1"):
        fq.quantize_(copy.deepcopy(tiny_llama), cfg, ids[:1], progress=False)
    with pytest.raises(ValueError, match="empty"):
        fq.quantize_(copy.deepcopy(tiny_llama), cfg, [], progress=False)
    with pytest.raises(ValueError, match="integer token ids of shape \\[N, T\\]"):
        fq.quantize_(copy.deepcopy(tiny_llama), cfg, torch.randn(4, 12), progress=False)
    with pytest.raises(TypeError, match="FlatQuantConfig"):
        fq.quantize_(copy.deepcopy(tiny_llama), {"w_bits": 4}, ids, progress=False)
    with pytest.raises(RuntimeError, match="reparameterize: expected a model quantized"):
        fq.reparameterize(copy.deepcopy(tiny_llama))


def test_unsupported_architecture(ids):
    from transformers import GPT2Config, GPT2LMHeadModel

    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=128))
    with pytest.raises(ValueError, match="unsupported architecture 'gpt2'.*expected.*bert.*llama"):
        fq.quantize_(m, fq.FlatQuantConfig(), ids)


def test_hidden_size_without_kronecker_factorisation(ids):
    from transformers import LlamaConfig, LlamaForCausalLM

    m = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=194, num_hidden_layers=1,
                                     num_attention_heads=4, num_key_value_heads=2, vocab_size=128))
    with pytest.raises(ValueError, match="layers.0.mlp.down_in: Kronecker transform: size 194"):
        fq.quantize_(m, fq.FlatQuantConfig(epochs=0, nsamples=4, seqlen=12, batch_size=2), ids, progress=False)


# ----------------------------------------------------------------------------- issue 20: bad input never passes


def test_nsamples_larger_than_the_calibration_rows(tiny_llama, ids):
    cfg = fq.FlatQuantConfig(epochs=0, nsamples=8, seqlen=12, batch_size=2)
    with pytest.raises(ValueError, match="calibration_data: expected at least FlatQuantConfig.nsamples=8 rows, got 4"):
        fq.quantize_(tiny_llama, cfg, ids, progress=False)


def test_sequence_length_must_equal_seqlen(tiny_llama, ids):
    cfg = fq.FlatQuantConfig(epochs=0, nsamples=4, seqlen=16, batch_size=2)
    with pytest.raises(ValueError, match="expected sequences of FlatQuantConfig.seqlen=16 tokens, got 12"):
        fq.quantize_(tiny_llama, cfg, ids, progress=False)


@pytest.mark.parametrize("bad", [128, 10_000, -1])
def test_token_ids_outside_the_vocab(tiny_llama, ids, bad):
    cfg = fq.FlatQuantConfig(epochs=0, nsamples=4, seqlen=12, batch_size=2)
    x = ids.clone()
    x[2, 5] = bad
    with pytest.raises(ValueError, match=r"expected token ids in \[0, 128\) \(the model's vocab_size\)"):
        fq.quantize_(tiny_llama, cfg, x, progress=False)


@pytest.mark.parametrize("deployed", [False, True])
def test_quantizing_an_already_quantized_model(tiny_llama, ids, deployed):
    cfg = fq.FlatQuantConfig(epochs=0, nsamples=4, seqlen=12, batch_size=2)
    fq.quantize_(tiny_llama, cfg, ids, progress=False)
    if deployed:
        fq.reparameterize(tiny_llama)
    with pytest.raises(RuntimeError, match="expected a full-precision model, got one that is already quantized"):
        fq.quantize_(tiny_llama, cfg, ids, progress=False)
    # also when the marker attribute is gone (e.g. a model rebuilt around quantized blocks)
    delattr(tiny_llama, "_flatquant_state")
    with pytest.raises(RuntimeError, match="already quantized"):
        fq.quantize_(tiny_llama, cfg, ids, progress=False)


def test_quantize_is_all_or_nothing(tiny_llama, ids, monkeypatch):
    """A failure in the second block leaves the model exactly as it was: same modules, weights, flags, outputs."""
    import flatquant.calibrate as C

    model = tiny_llama.train()
    before_sd = {k: v.clone() for k, v in model.state_dict().items()}
    before_types = [(n, type(m)) for n, m in model.named_modules()]
    before_grad = [p.requires_grad for p in model.parameters()]
    model.config.use_cache = True
    calls = []
    real = C._train_layer

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("calibration diverged (injected)")
        return real(*a, **k)

    monkeypatch.setattr(C, "_train_layer", failing)
    with pytest.raises(FloatingPointError, match="injected"):
        fq.quantize_(model, fq.FlatQuantConfig(epochs=1, nsamples=4, seqlen=12, batch_size=2), ids, progress=False)
    assert len(calls) == 2
    assert [(n, type(m)) for n, m in model.named_modules()] == before_types
    sd = model.state_dict()
    assert sd.keys() == before_sd.keys() and all(torch.equal(sd[k], before_sd[k]) for k in sd)
    assert [p.requires_grad for p in model.parameters()] == before_grad
    assert model.training and model.config.use_cache is True
    assert fq.quantized_config(model) is None
    # and the model can still be quantized afterwards
    monkeypatch.setattr(C, "_train_layer", real)
    fq.quantize_(model, fq.FlatQuantConfig(epochs=1, nsamples=4, seqlen=12, batch_size=2), ids, progress=False)
