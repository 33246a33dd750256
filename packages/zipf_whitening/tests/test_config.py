import pytest
from zipf_whitening.config import ZipfWhiteningConfig


def test_defaults_are_the_papers():
    c = ZipfWhiteningConfig()
    assert (c.sif_a, c.sif_components, c.abtt_components, c.usif_n, c.usif_components) == (1e-3, 1, 3, 11, 5)
    assert c.wordlist == "large" and c.layers == "last"


@pytest.mark.parametrize("kw", [{"eps": -1.0}, {"sif_a": 0.0}, {"abtt_components": 0}, {"usif_n": 1.5},
                                {"layers": "middle"}, {"wordlist": "huge"}, {"batch_size": True}])
def test_bad_values_raise(kw):
    with pytest.raises(ValueError, match="got"):
        ZipfWhiteningConfig(**kw)


def test_round_trip():
    c = ZipfWhiteningConfig(sif_a=1e-4, layers="first_last")
    assert ZipfWhiteningConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        ZipfWhiteningConfig.from_dict({"nope": 1})
