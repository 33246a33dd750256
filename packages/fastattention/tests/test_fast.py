"""The CPU fast path (SDPA's flash kernel per visible piece, LSE merge) against the reference and the tiled loop."""

import pytest
import torch
from fastattention import TilingConfig, TilingMask, attention, fast

TILED = TilingConfig(block_m=32, block_n=64, inner_n=32, cpu_flash=False)
FAST = TilingConfig(block_m=32, block_n=64)


def _qkv(h=4, hk=2, lq=70, lk=70, d=16, e=None, seed=0, b=1):
    g = torch.Generator().manual_seed(seed)
    shapes = ((b, h, lq, d), (b, hk, lk, d), (b, hk, lk, e or d))
    return tuple(torch.randn(*s, generator=g).requires_grad_() for s in shapes)


def _run(q, k, v, tiling, backend="torch", use_lse=False, **kw):
    o, lse = attention(q, k, v, backend=backend, tiling=tiling, return_lse=True, **kw)
    w = torch.linspace(-1, 1, o.shape[-1], dtype=o.dtype)
    loss = (o * w).square().sum() + (torch.where(torch.isinf(lse), 0, lse).sum() if use_lse else 0)
    grads = torch.autograd.grad(loss, (q, k, v))
    return o.detach(), lse.detach(), grads


CASES = [
    dict(causal=True),
    dict(causal=False),
    dict(causal=True, lq=7, lk=90),  # decoding: bottom-right causal
    dict(causal=True, lq=90, lk=40),  # more queries than keys: empty rows
    dict(causal=True, window=24),
    dict(causal=True, window=70, lq=150, lk=150),  # window span >= 64: causal + anti triangles
    dict(causal=False, window=66, lq=160, lk=130),
    dict(window=(80, 3), lq=150, lk=170),
    dict(window=(-1, 5), lq=100, lk=100),
    dict(window=(100, -1), lq=100, lk=130),
    dict(causal=True, q_offset=30, lq=50, lk=120),
    dict(causal=True, window=90, q_offset=-20, lq=200, lk=200),
    dict(hk=1, causal=True, window=65, lq=300, lk=300),
    dict(hk=4, d=8, e=24, causal=False),
    # the window plan: a leading causal piece, batched masked blocks sharing one template, sliced tail blocks
    dict(causal=True, window=20, lq=203, lk=203),  # window < block, N not a multiple of the block
    dict(causal=True, window=500, lq=150, lk=150),  # window > N: the whole thing is the leading causal piece
    dict(hk=1, b=2, causal=True, window=40, lq=203, lk=203),  # GQA, batch 2
    dict(causal=False, window=33, lq=203, lk=203),  # both edges, blocks cut by the key end
    dict(causal=True, window=50, q_offset=30, lq=120, lk=200),  # leading piece = full + causal, merged
    dict(causal=True, window=64, lq=97, lk=300),  # decoding-like offset: no leading piece
    dict(causal=True, window=37, lq=200, lk=120, q_offset=0),  # the last queries see no key: empty rows
]


@pytest.mark.parametrize("use_lse", [False, True])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_fast_path_equals_reference_and_tiled_loop(case, use_lse):
    case = dict(case)
    shape = {k: case.pop(k) for k in ("h", "hk", "lq", "lk", "d", "e", "b") if k in case}
    q, k, v = _qkv(**shape)
    o, lse, g = _run(q, k, v, FAST, use_lse=use_lse, **case)
    o_t, lse_t, g_t = _run(q, k, v, TILED, use_lse=use_lse, **case)
    qd, kd, vd = (t.detach().double().requires_grad_() for t in (q, k, v))
    o_r, lse_r, g_r = _run(qd, kd, vd, None, backend="reference", use_lse=use_lse, **case)
    assert torch.equal(torch.isneginf(lse), torch.isneginf(lse_r))
    fin = torch.isfinite(lse_r)
    assert (o.double() - o_r).abs().max() < 2e-6
    assert (lse.double() - lse_r)[fin].abs().max() < 2e-6
    assert (o - o_t).abs().max() < 2e-6 and (lse - lse_t)[fin].abs().max() < 2e-6
    for a, b, r in zip(g, g_t, g_r):
        tol = 1e-5 * max(1.0, r.abs().max().item())
        assert (a.double() - r).abs().max() < tol and (a - b).abs().max() < tol


@pytest.mark.parametrize("per_head", [False, True])
def test_block_sparse_and_dense_masks(per_head):
    q, k, v = _qkv(lq=96, lk=128)
    g = torch.Generator().manual_seed(1)
    layout = torch.rand((4, 6, 8) if per_head else (6, 8), generator=g) > 0.4
    tm = TilingMask.block_sparse(layout, 16)
    keep = torch.rand(1, 4, 96, 128, generator=g) > 0.3
    bias = torch.randn(1, 1, 96, 128, generator=g)
    for kw in (dict(mask=tm, causal=True), dict(mask=keep), dict(mask=bias, causal=True), dict(mask=keep, window=30)):
        o, lse, gr = _run(q, k, v, FAST, use_lse=False, **kw)
        qd, kd, vd = (t.detach().double().requires_grad_() for t in (q, k, v))
        o_r, lse_r, g_r = _run(qd, kd, vd, None, backend="reference", **kw)
        fin = torch.isfinite(lse_r)
        assert torch.equal(torch.isneginf(lse), torch.isneginf(lse_r))
        assert (o.double() - o_r).abs().max() < 2e-6 and (lse.double() - lse_r)[fin].abs().max() < 2e-6
        for a, r in zip(gr, g_r):
            assert (a.double() - r).abs().max() < 1e-5 * max(1.0, r.abs().max().item())


def test_float64_gradcheck():
    q, k, v = (t.detach().double().requires_grad_() for t in _qkv(h=2, hk=1, lq=9, lk=12, d=4))
    f = lambda q, k, v: attention(q, k, v, causal=True, window=(5, 1), return_lse=True, backend="torch", tiling=FAST)
    assert torch.autograd.gradcheck(f, (q, k, v), fast_mode=True)


def test_plan_visits_only_the_band_once():
    m = TilingMask.sliding_window(1024)
    n = 16384
    pieces = fast.plan(m, n, n, 0, block_m=128, block_n=256)
    covered = sum(p.n * (p.q1 - p.q0) * (p.k1 - p.k0) for p in pieces)
    assert covered <= 2 * n * 1024  # two triangles per block: about W keys per query, not N
    assert covered <= n * (1024 + 128)
    assert max(p.n for p in pieces) > 100  # the interior blocks run as one batched kernel call
    assert [p.kind for p in fast.plan(TilingMask.causal(), n, n, 0, block_m=128, block_n=256)] == ["causal"]
    assert [p.kind for p in fast.plan(TilingMask(), n, n, 0, block_m=128, block_n=256)] == ["full"]
    # every visible pair exactly once, every hidden pair never (odd lengths, offset, both edges)
    for mk, lq, lk, off in ((TilingMask.sliding_window((70, 9), causal=False), 150, 170, 20),
                            (TilingMask.sliding_window(65), 200, 180, -20)):
        count = torch.zeros(lq, lk, dtype=torch.int64)
        for p in fast.plan(mk, lq, lk, off, block_m=32, block_n=64):
            for q0, q1, k0, k1 in p.blocks():
                count[q0:q1, k0:k1] += 1
        dense = mk.dense(lq, lk, off=off)
        assert (count[dense] == 1).all() and (count <= 1).all()


def test_large_finite_inputs_pass_the_finite_check():
    """The finite check sums in the input's dtype; an overflowing sum falls back to an element-wise check."""
    q, k, v = (t.detach() for t in _qkv(lq=64, lk=1024))  # 32768 entries: the chunked sums
    big = torch.full_like(v, 1e35)  # finite, but a chunk sum (16384 entries) overflows fp32
    out = attention(q, k, big, backend="torch")
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="v must be finite"):
        attention(q, k, big.index_fill(2, torch.tensor([700]), float("nan")), backend="torch")


@pytest.mark.parametrize("causal", [True, False])
def test_dense_attention_is_one_kernel_call(causal):
    """Dense causal / full attention runs as one piece, whose output is returned without a merge."""
    pieces = fast.plan(TilingMask(is_causal=causal), 1024, 1024, 0, block_m=128, block_n=256)
    assert len(pieces) == 1 and fast._whole(pieces, 1024, 1024)


def test_window_plan_is_a_causal_head_and_one_batched_run():
    """N = 16K, window 1024: the first W queries are one unmasked causal piece, the rest one batched kernel
    call; the band template is cached across calls (no mask construction per call)."""
    n = 16384
    pieces = fast.plan(TilingMask.sliding_window(1024), n, n, 0, block_m=128, block_n=256)
    assert [(p.kind, p.n) for p in pieces] == [("causal", 1), ("mask", 120)]
    assert (pieces[0].q0, pieces[0].q1, pieces[0].k0, pieces[0].k1) == (0, 1024, 0, 1024)
    q, k, v = (torch.randn(1, 1, 600, 16) for _ in range(3))
    attention(q, k, v, causal=True, window=100, backend="torch", tiling=FAST)
    misses = fast._band_template.cache_info().misses
    attention(q, k, v, causal=True, window=100, backend="torch", tiling=FAST)
    assert fast._band_template.cache_info().misses == misses


@pytest.mark.parametrize("window", [37, (20, 9), (5, 40)])
def test_band_mask_slices_and_empty_rows_match_the_dense_mask(window):
    """Every piece's additive mask (a slice of the cached template) and its empty rows equal the band mask."""
    mk = TilingMask.sliding_window(window, causal=isinstance(window, int))
    for lq, lk, off in ((203, 203, 0), (90, 160, 70), (150, 120, -30), (200, 120, 0)):  # empty rows: both ends
        dense = mk.dense(lq, lk, off=off)
        cache: dict = {}
        for p in fast.plan(mk, lq, lk, off, block_m=32, block_n=64):
            if p.kind != "mask":
                continue
            for q0, q1, k0, k1 in p.blocks():
                piece = fast.Piece(q0, q1, k0, k1, "mask")
                m, empty = fast._piece_mask(mk, None, piece, off, torch.float32, torch.device("cpu"), cache)
                keep = dense[q0:q1, k0:k1]
                assert torch.equal(m[0, 0] == 0, keep) and torch.isneginf(m[0, 0]).eq(~keep).all()
                want = ~keep.any(-1)
                assert torch.equal(empty[0, 0], want) if empty is not None else not want.any()


def test_large_band_masks_are_built_per_call(monkeypatch):
    """Templates above the cache bound are built per call, with the same result."""
    q, k, v = (t.detach() for t in _qkv(lq=203, lk=203))
    want = attention(q, k, v, causal=True, window=40, backend="reference")
    monkeypatch.setattr(fast, "_CACHED_MASK", 0)
    misses = fast._band_template.cache_info().misses
    got = attention(q, k, v, causal=True, window=40, backend="torch", tiling=TilingConfig(block_m=16, block_n=32))
    assert fast._band_template.cache_info().misses == misses
    assert (got - want).abs().max() < 2e-6
