import pytest
from fastattention.config import DEFAULT_TILING, TilingConfig


def test_defaults_and_round_trip():
    c = TilingConfig(inner_n=128)
    assert c.inner == 128 and DEFAULT_TILING.inner == DEFAULT_TILING.block_n
    assert TilingConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("kw,msg", [
    ({"block_m": 0}, "block_m: expected a positive int, got 0"),
    ({"block_n": 64, "inner_n": 48}, "expected a positive divisor of block_n=64, got 48"),
    ({"triton_block_n": 24}, "power of two >= 16"),
    ({"triton_block_n_outer": 64, "triton_block_n": 128}, "multiple of triton_block_n=128, got 64"),
])
def test_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TilingConfig(**kw)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        TilingConfig.from_dict({"blockm": 3})
