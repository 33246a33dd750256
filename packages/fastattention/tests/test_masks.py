import pytest
import torch
from fastattention.masks import FULL, PARTIAL, SKIP, TilingMask, make_mask


def _dense_band(lq, lk, left, right, off):
    i = torch.arange(lq)[:, None]
    j = torch.arange(lk)[None, :]
    r = j - i - off
    return (r <= right) & (r >= -left)


@pytest.mark.parametrize("mask,left,right", [
    (TilingMask.causal(), 10**9, 0),
    (TilingMask.sliding_window(5), 4, 0),
    (TilingMask.sliding_window(5, causal=False), 4, 4),
    (TilingMask.sliding_window((3, 7), causal=False), 3, 7),
])
@pytest.mark.parametrize("lq,lk", [(37, 37), (20, 53), (53, 20)])
def test_tiles_reassemble_the_dense_mask(mask, left, right, lq, lk):
    off = lk - lq
    want = _dense_band(lq, lk, left, right, off)
    assert torch.equal(mask.dense(lq, lk), want)
    got = torch.zeros(lq, lk, dtype=torch.bool)
    for bm, bn in [(8, 8), (16, 4), (5, 11)]:
        got.zero_()
        for q0 in range(0, lq, bm):
            q1 = min(q0 + bm, lq)
            k0r, k1r = mask.kv_range(q0, q1, lk, off)
            assert not want[q0:q1, :k0r].any() and not want[q0:q1, k1r:].any()
            for k0 in range(0, lk, bn):
                k1 = min(k0 + bn, lk)
                kind = mask.tile_kind(q0, q1, k0, k1, off)
                if kind == SKIP:
                    assert not want[q0:q1, k0:k1].any()
                    continue
                t = mask.tile_mask(q0, q1, k0, k1, off, torch.device("cpu"))
                if kind == FULL:
                    assert t is None
                    got[q0:q1, k0:k1] = True
                else:
                    assert kind == PARTIAL and t is not None and t.shape == (q1 - q0, k1 - k0)
                    got[q0:q1, k0:k1] = t
        assert torch.equal(got, want)


def test_template_memory_is_independent_of_sequence_length():
    m = TilingMask.causal()
    assert m.nbytes_template(128, 128) == 256 * 256
    # a partial tile at a huge offset is still a small view of the same template
    t = m.tile_mask(1_000_000, 1_000_128, 1_000_000, 1_000_128, 0, torch.device("cpu"))
    assert t.shape == (128, 128) and t.untyped_storage().nbytes() == 256 * 256
    assert torch.equal(t, torch.ones(128, 128, dtype=torch.bool).tril())


def test_block_sparse_layout_and_dense_agree():
    lay = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    m = TilingMask.block_sparse(lay, 4)
    d = m.dense(8, 8)
    assert d[:4, :4].all() and not d[:4, 4:].any() and d[4:, :].all()
    assert m.layout_tile(0, 4, 4, 4) is False
    with pytest.raises(ValueError, match="expected \\(3, 2\\) blocks"):
        m.check_layout(12, 8, 1)


def test_intersection_and_bad_values():
    m = make_mask(True, 8, TilingMask.sliding_window(4, causal=False))
    assert (m.left, m.right_bound) == (3, 0)
    with pytest.raises(ValueError, match="expected an int >= 1"):
        TilingMask.sliding_window(0)
    with pytest.raises(ValueError, match="expected None or an int >= 0"):
        TilingMask(left=-2)
    with pytest.raises(ValueError, match="bool tensor"):
        TilingMask.block_sparse(torch.ones(2), 4)
