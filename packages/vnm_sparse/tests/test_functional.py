import itertools
import math

import pytest
import torch
from vnm_sparse.functional import (
    absolute_columns,
    check_vnm,
    mask_diversity,
    pack_vnm,
    ria_score,
    select_vm,
    storage_bytes,
    unpack_vnm,
    vnm_mask,
    vnm_mask_reference,
    vnm_matmul_reference,
    vnm_matmul_torch,
)


@pytest.mark.parametrize("v,m", [(1, 4), (4, 5), (8, 6), (4, 8)])
@pytest.mark.parametrize("exact", [False, True])
def test_mask_matches_reference(v, m, exact):
    torch.manual_seed(v * 10 + m)
    w = torch.randn(2 * v, 3 * m)
    assert torch.equal(vnm_mask(w, v, 2, m, exact=exact), vnm_mask_reference(w, v, 2, m, exact=exact))


@pytest.mark.parametrize("v,m", [(16, 5), (8, 8), (4, 4)])
def test_mask_pattern_and_density(v, m):
    w = torch.randn(4 * v, 5 * m)
    mask = vnm_mask(w, v, 2, m)
    assert check_vnm(mask, v, 2, m, exact_n=True)
    assert mask.float().mean().item() == pytest.approx(2 / m)
    blocks = mask.reshape(4, v, 5, m)
    assert (blocks.any(1).sum(-1) <= 4).all()  # at most the same 4 columns per block


def test_exact_is_optimal_and_beats_heuristic():
    torch.manual_seed(0)
    w = torch.randn(32, 40).abs() ** 3  # heavy tails make the heuristic miss
    s = w.abs()
    exact = (s * vnm_mask(w, 8, 2, 8, exact=True)).sum()
    heur = (s * vnm_mask(w, 8, 2, 8)).sum()
    assert exact >= heur - 1e-4
    # brute force on one block: no 4-subset retains more
    blk = s[:8, :8]
    best = max(sum(sum(sorted(blk[r, list(c)].tolist())[-2:]) for r in range(8))
               for c in itertools.combinations(range(8), 4))
    got = (blk * vnm_mask(w, 8, 2, 8, exact=True)[:8, :8]).sum().item()
    assert got == pytest.approx(best, rel=1e-5)


def test_hand_computed_block():
    # one 2x5 block: columns 0..3 have the largest L1 norms; row 0 keeps cols 0,1, row 1 keeps 2,3
    w = torch.tensor([[9.0, 8.0, 1.0, 1.0, 0.5], [1.0, 1.0, 9.0, 8.0, 0.5]])
    mask = vnm_mask(w, 2, 2, 5)
    assert mask.tolist() == [[True, True, False, False, False], [False, False, True, True, False]]


def test_ria_score_formula():
    w = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    norm = torch.tensor([4.0, 9.0])
    s = ria_score(w, norm, alpha=0.5)
    a = w.abs()
    expect = (a / a.sum(0) + a / a.sum(1, keepdim=True)) * norm.sqrt()
    assert torch.allclose(s, expect)


def test_ria_needs_norms():
    with pytest.raises(ValueError, match="act_norm"):
        vnm_mask(torch.randn(8, 8), 4, 2, 4, score="ria")


def test_bad_input_messages():
    with pytest.raises(ValueError, match="m=5 does not divide the 12 columns"):
        vnm_mask(torch.randn(8, 12), 4, 2, 5)
    with pytest.raises(ValueError, match="v=3 does not divide the 8 rows"):
        vnm_mask(torch.randn(8, 10), 3, 2, 5)
    with pytest.raises(ValueError, match="n: expected 2"):
        vnm_mask(torch.randn(8, 10), 4, 4, 5)
    with pytest.raises(ValueError, match="m: expected an integer >= 4"):
        vnm_mask(torch.randn(8, 9), 4, 2, 3)
    w = torch.randn(8, 10)
    w[3, 7] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite value at index \(3, 7\)"):
        vnm_mask(w, 4, 2, 5)


def test_pad_keeps_nothing_in_padding():
    torch.manual_seed(1)
    w = torch.randn(20, 13)
    mask = vnm_mask(w, 8, 2, 5, pad=True)
    assert mask.shape == w.shape
    assert check_vnm(mask, 8, 2, 5, pad=True)
    # last group has 3 real columns: all rows keep 2 of them
    assert (mask[:, 10:].sum(1) == 2).all()


def test_check_vnm_reports_where():
    mask = vnm_mask(torch.randn(8, 10), 4, 2, 5)
    bad = mask.clone()
    bad[5, 5:10] = True  # 5 kept in one row of block (1, 1)
    with pytest.raises(ValueError, match="row 5, columns 5..9"):
        check_vnm(bad, 4, 2, 5)
    bad = torch.zeros(8, 10, dtype=torch.bool)
    for r, c in enumerate([0, 1, 2, 3, 4]):  # rows 0..3 of block (0, 0) use 5 distinct columns
        if r < 4:
            bad[r, c] = True
    bad[0, 4] = True
    with pytest.raises(ValueError, match=r"block \(0, 0\).*found 5"):
        check_vnm(bad, 4, 2, 5)


def test_mask_diversity_values():
    assert mask_diversity(64, 5) == pytest.approx(math.log(5) / 320 + math.log(6) / 5)
    assert round(mask_diversity(16, 5), 3) == 0.378
    assert round(mask_diversity(64, 8), 3) == 0.232
    # smaller M and smaller V give more diversity
    assert mask_diversity(16, 5) > mask_diversity(64, 5) > mask_diversity(64, 6) > mask_diversity(64, 8)
    assert mask_diversity(64, 5, numel=100) == pytest.approx(100 * mask_diversity(64, 5))


def test_select_vm_two_sieves():
    sp = {(16, 5): 1.05, (16, 6): 1.3, (16, 8): 1.6, (64, 5): 1.25, (64, 6): 1.5, (64, 8): 1.8, (128, 5): 1.3}
    sel = select_vm(sp, 1.2)
    # sieve 1: smallest M per V that reaches 1.2 -> (16,6), (64,5), (128,5); sieve 2: max MD
    assert set(sel.sieve1) == {(16, 6), (64, 5), (128, 5)}
    assert (sel.v, sel.m) == (64, 5)
    assert (select_vm(sp, 1.55).v, select_vm(sp, 1.55).m) == (16, 8)
    with pytest.raises(ValueError, match="best measured is 1.800"):
        select_vm(sp, 3.0)


@pytest.mark.parametrize("shape,v,m", [((32, 40), 16, 5), ((30, 43), 16, 5), ((64, 64), 32, 8), ((8, 8), 4, 4)])
def test_pack_round_trip_and_matmul(shape, v, m):
    torch.manual_seed(2)
    w = torch.randn(*shape)
    mask = vnm_mask(w, v, 2, m, pad=True)
    p = pack_vnm(w, mask, v, m)
    assert torch.equal(unpack_vnm(p), w * mask)
    assert p.nbytes == storage_bytes(shape, v, m, torch.float32)["stored"]
    assert p.packed_nbytes == storage_bytes(shape, v, m, torch.float32)["packed"]
    assert absolute_columns(p).shape == (math.ceil(shape[0] / v), 4 * math.ceil(shape[1] / m))
    x = torch.randn(3, 5, shape[1])
    b = torch.randn(shape[0])
    torch.testing.assert_close(vnm_matmul_torch(x, p, b), vnm_matmul_reference(x, p, b), rtol=1e-5, atol=1e-5)


def test_storage_exact_figures():
    b = storage_bytes((4096, 4096), 64, 5, torch.float16)
    g = math.ceil(4096 / 5)
    assert b["dense"] == 4096 * 4096 * 2
    assert b["stored"] == 4096 * g * 2 * 2 + 64 * g * 4 + 4096 * g
    assert b["packed"] == 4096 * g * 2 * 2 + math.ceil((64 * g * 4 * 3 + 4096 * g * 4) / 8)


def test_pack_rejects_bad_mask():
    w = torch.randn(8, 10)
    with pytest.raises(ValueError, match="violates"):
        pack_vnm(w, torch.ones(8, 10, dtype=torch.bool), 4, 5)
