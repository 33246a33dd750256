import pytest
from vnm_sparse.config import ThreeStageLoRAConfig, VNMConfig


def test_defaults_match_paper():
    c = VNMConfig()
    assert (c.v, c.n, c.m) == (64, 2, 5)  # 64:2:5, the paper's DeiT-small / Llama2 setting
    assert c.density == pytest.approx(0.4)
    assert c.name == "64:2:5"
    lc = ThreeStageLoRAConfig()
    s1, s2, s3 = lc.stage_steps
    assert s1 + s2 <= 0.1 * lc.total_steps + 1e-9  # stages 1 and 2 take at most 10% (Sec. 3.3)
    assert s1 + s2 + s3 == lc.total_steps


@pytest.mark.parametrize("kw, msg", [({"n": 4}, "n: expected 2"), ({"m": 3}, "m: expected"),
                                     ({"v": 0}, "v: expected"), ({"score": "wanda"}, "score: expected")])
def test_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        VNMConfig(**kw)


def test_lora_bad_values():
    with pytest.raises(ValueError, match="dense_frac \\+ dynamic_frac"):
        ThreeStageLoRAConfig(dense_frac=0.6, dynamic_frac=0.6)
    with pytest.raises(ValueError, match="mask_interval"):
        ThreeStageLoRAConfig(mask_interval=0)


def test_round_trip():
    c = VNMConfig(v=16, m=8, score="ria", exact=True, pad=True)
    assert VNMConfig.from_dict(c.to_dict()) == c
    lc = ThreeStageLoRAConfig(total_steps=50, target_modules=("q_proj",))
    assert ThreeStageLoRAConfig.from_dict(lc.to_dict()) == lc
    with pytest.raises(ValueError, match="unknown key"):
        VNMConfig.from_dict({"v": 4, "bogus": 1})
