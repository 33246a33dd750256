import pytest
import torch
from fastattention import TilingConfig, attention
from fastattention.parallel import (
    _experiment_inputs,
    run_two_process_experiment,
    shard_heads,
    tp_attention_out_proj,
)

SHAPE = (1, 4, 2, 192, 16, 32)  # b, h, hk, n, d, m
TILING = {"block_m": 32, "block_n": 64}


def test_tiled_allreduce_equals_untiled_and_single_process():
    """Two gloo processes, two heads each: tiled async all-reduce == untiled == one process."""
    res = run_two_process_experiment({
        "shape": SHAPE, "tiling": TILING,
        "runs": {"untiled": {"tile_rows": None}, "tiled": {"tile_rows": 64},
                 "tiled_window": {"tile_rows": 32, "window": (20, 5), "causal": False}},
    })
    b, h, _, n, d, _ = SHAPE
    q, k, v, w = _experiment_inputs(*SHAPE)
    tiling = TilingConfig(**TILING)
    want = attention(q, k, v, causal=True, tiling=tiling).transpose(1, 2).reshape(b, n, h * d) @ w
    untiled, tiled = torch.tensor(res["untiled"]["y"]), torch.tensor(res["tiled"]["y"])
    assert res["tiled"]["tiles"] == 3 and res["untiled"]["tiles"] == 1
    assert (tiled - untiled).abs().max() <= 1e-6
    assert torch.allclose(untiled, want, atol=1e-5)
    want_w = attention(q, k, v, window=(20, 5), tiling=tiling).transpose(1, 2).reshape(b, n, h * d) @ w
    assert torch.allclose(torch.tensor(res["tiled_window"]["y"]), want_w, atol=1e-5)


def test_bad_arguments():
    q, k, v, w = _experiment_inputs(*SHAPE)
    with pytest.raises(ValueError, match="expected q \\[b, h, n, d\\] and w_o \\[h \\* d_v, m\\]"):
        tp_attention_out_proj(q, k, v, w[:10])
    with pytest.raises(ValueError, match="tile_rows must be None or a positive int"):
        tp_attention_out_proj(q, k, v, w, tile_rows=0)
    with pytest.raises(ValueError, match="not divisible by world size 3"):
        shard_heads(q, 0, 3)
