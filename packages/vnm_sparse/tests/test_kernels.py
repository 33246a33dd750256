"""The Triton kernel against its references: under TRITON_INTERPRET=1 in a subprocess (CPU), on CUDA
when present."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from vnm_sparse.functional import pack_vnm, vnm_mask
from vnm_sparse.kernels import block_rows, resolve_backend, vnm_matmul

pytest.importorskip("triton")

SCRIPT = textwrap.dedent("""
    import torch
    from vnm_sparse.functional import pack_vnm, vnm_mask, vnm_matmul_reference
    from vnm_sparse.kernels import vnm_matmul
    torch.manual_seed(0)
    for (r, c, v, m, t, bias) in [(32, 40, 16, 5, 5, True), (30, 43, 16, 5, 7, False), (64, 64, 32, 8, 9, True)]:
        w = torch.randn(r, c)
        mask = vnm_mask(w, v, 2, m, pad=True)
        p = pack_vnm(w, mask, v, m)
        x = torch.randn(t, c)
        b = torch.randn(r) if bias else None
        y = vnm_matmul(x, p, b, backend="triton")
        ref = vnm_matmul_reference(x, p, b)
        err = (y - ref).abs().max().item()
        assert err < 1e-4, (r, c, v, m, err)
    print("OK")
""")


def test_triton_interpreter_matches_reference():
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_block_rows():
    assert block_rows(64) == 64 and block_rows(16) == 16 and block_rows(48) == 16 and block_rows(128) == 128
    assert block_rows(8) is None and block_rows(20) is None


def test_backend_resolution_on_cpu():
    w = torch.randn(32, 40)
    p = pack_vnm(w, vnm_mask(w, 16, 2, 5), 16, 5)
    x = torch.randn(2, 40)
    if not os.environ.get("TRITON_INTERPRET"):
        assert resolve_backend("auto", p, x) == "torch"  # "auto" never picks the interpreter
        with pytest.raises(RuntimeError, match="needs CUDA"):
            vnm_matmul(x, p, backend="triton")
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("cuda", p, x)
    with pytest.raises(ValueError, match="last dimension 40"):
        vnm_matmul(torch.randn(2, 41), p)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_cuda(dtype):
    torch.manual_seed(0)
    w = torch.randn(256, 320, device="cuda", dtype=dtype)
    p = pack_vnm(w, vnm_mask(w, 64, 2, 5), 64, 5)
    x = torch.randn(100, 320, device="cuda", dtype=dtype)
    from vnm_sparse.functional import vnm_matmul_reference

    torch.testing.assert_close(vnm_matmul(x, p, backend="triton").float(), vnm_matmul_reference(x, p).float(),
                               rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("r, c, v, m, lead, bias", [(128, 64, 64, 8, (5,), False), (100, 70, 16, 5, (2, 3), True),
                                                    (64, 48, 32, 4, (7,), True)])
def test_blocked_matches_reference(r, c, v, m, lead, bias):
    """The CPU fast path (one GEMM per row block) equals the dense reference and the gather reference."""
    from vnm_sparse.functional import (
        pack_vnm,
        vnm_mask,
        vnm_matmul_blocked,
        vnm_matmul_reference,
        vnm_matmul_torch,
    )

    torch.manual_seed(0)
    w = torch.randn(r, c)
    p = pack_vnm(w, vnm_mask(w, v, 2, m, pad=True), v, m)
    x = torch.randn(*lead, c)
    b = torch.randn(r) if bias else None
    y = vnm_matmul_blocked(x, p, b)
    assert y.shape == (*lead, r)
    torch.testing.assert_close(y, vnm_matmul_reference(x, p, b), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, vnm_matmul_torch(x, p, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tile", [1, 3, 7, 2048])
@pytest.mark.parametrize("r, c, v, m, t, bias", [(128, 64, 64, 8, 10, False), (100, 70, 16, 5, 9, True),
                                                 (64, 48, 32, 4, 1, True), (33, 40, 16, 8, 0, False)])
def test_blocked_tiles_and_edges_match_reference(tile, r, c, v, m, t, bias):
    """Token tiles (full, partial last tile, one token per tile), padded rows/columns and T = 0."""
    from vnm_sparse.functional import pack_vnm, vnm_mask, vnm_matmul_blocked, vnm_matmul_reference

    torch.manual_seed(1)
    w = torch.randn(r, c)
    p = pack_vnm(w, vnm_mask(w, v, 2, m, pad=True), v, m)
    x = torch.randn(t, c)
    b = torch.randn(r) if bias else None
    y = vnm_matmul_blocked(x, p, b, tile_tokens=tile)
    assert y.shape == (t, r)
    torch.testing.assert_close(y, vnm_matmul_reference(x, p, b), rtol=1e-5, atol=1e-5)


def test_blocked_rejects_bad_tile():
    from vnm_sparse.functional import pack_vnm, vnm_mask, vnm_matmul_blocked

    w = torch.randn(64, 32)
    p = pack_vnm(w, vnm_mask(w, 64, 2, 4), 64, 4)
    with pytest.raises(ValueError, match="tile_tokens"):
        vnm_matmul_blocked(torch.randn(3, 32), p, tile_tokens=0)


def test_blocked_gradients_match_reference():
    """With autograd on, x's and the bias's gradients equal the dense reference's."""
    from vnm_sparse.functional import pack_vnm, vnm_mask, vnm_matmul_blocked, vnm_matmul_reference

    torch.manual_seed(2)
    w = torch.randn(100, 70)
    p = pack_vnm(w, vnm_mask(w, 16, 2, 5, pad=True), 16, 5)
    x0, b0, gy = torch.randn(2, 6, 70), torch.randn(100), torch.randn(2, 6, 100)
    grads = []
    for fn in (vnm_matmul_blocked, vnm_matmul_reference):
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = fn(x, p, b)
        y.backward(gy)
        grads.append((y.detach(), x.grad, b.grad))
    for a, e in zip(*grads, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the fast path itself runs without autograd
        torch.testing.assert_close(vnm_matmul_blocked(x0, p, b0), grads[1][0], rtol=1e-5, atol=1e-5)
