import pytest
from flatquant import FlatQuantConfig


def test_defaults_are_the_papers():
    c = FlatQuantConfig()
    assert (c.w_bits, c.a_bits, c.k_bits, c.v_bits) == (4, 4, 4, 4)
    assert c.w_sym and c.a_sym and not c.k_sym and not c.v_sym
    assert (c.epochs, c.nsamples, c.seqlen, c.batch_size) == (15, 128, 2048, 4)
    assert c.lr == 5e-3 and c.clip_lr_mult == 10.0 and c.diag_alpha == 0.3 and c.smooth_alpha == 0.5
    assert c.add_diag and c.lwc and c.lac and c.cali_trans and c.method == "flatquant"


def test_roundtrip():
    c = FlatQuantConfig(method="quarot", w_bits=8, epochs=0)
    assert FlatQuantConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("kw, msg", [
    (dict(w_bits=1), "w_bits: expected one of"), (dict(a_bits=12), "a_bits"), (dict(k_bits=4.0), "k_bits"),
    (dict(method="awq"), "method: expected one of"), (dict(epochs=-1), "epochs"), (dict(nsamples=0), "nsamples"),
    (dict(lr=0.0), "lr"), (dict(diag_alpha=1.5), "diag_alpha"), (dict(weight_quantizer="awq"), "weight_quantizer"),
    (dict(weight_quantizer="gptq", w_bits=16), "gptq"),
])
def test_bad_values_raise(kw, msg):
    with pytest.raises(ValueError, match=msg):
        FlatQuantConfig(**kw)


def test_from_dict_unknown_key():
    with pytest.raises(ValueError, match="unknown key"):
        FlatQuantConfig.from_dict({"bits": 4})
