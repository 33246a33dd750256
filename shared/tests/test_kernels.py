"""Shared quantization kernels: references (closed forms) and Triton vs reference (exact on codes)."""

import os
import subprocess
import sys

import pytest
import torch
from papercommon.kernels import (
    dequantize_asymmetric,
    dequantize_symmetric,
    fake_quantize_symmetric,
    fp8_dequantize_blockwise,
    fp8_quantize_blockwise,
    pack_int4,
    quantize_asymmetric,
    quantize_symmetric,
    resolve_backend,
    unpack_int4,
)


def test_symmetric_closed_form():
    x = torch.tensor([[-7.0, 3.5, 2.5, 7.0]])
    q, s = quantize_symmetric(x, bits=4)
    assert s.item() == 1.0
    assert q.tolist() == [[-7, 4, 2, 7]]  # ties round half to even: 3.5 -> 4, 2.5 -> 2
    assert torch.allclose(dequantize_symmetric(q, s), x, atol=0.5)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_symmetric_error_bound_and_range(bits):
    x = torch.randn(16, 33)
    q, s = quantize_symmetric(x, bits, dim=0)
    assert s.shape == (1, 33)
    assert q.min() >= -(2 ** (bits - 1)) and q.max() <= 2 ** (bits - 1) - 1
    assert (dequantize_symmetric(q, s) - x).abs().le(s / 2 + 1e-6).all()


def test_clip_ratio_clips():
    x = torch.tensor([[0.1, 10.0]])
    q, s = quantize_symmetric(x, 4, clip_ratio=0.5)
    assert s.item() == pytest.approx(5 / 7) and q[0, 1] == 7


def test_asymmetric_contains_zero_and_bounds():
    x = torch.rand(8, 64) + 1.0  # all positive: range still includes 0
    q, s, z = quantize_asymmetric(x, 4)
    assert (z == 0).all() and q.max() == 15
    assert (dequantize_asymmetric(q, s, z) - x).abs().le(s / 2 + 1e-6).all()


def test_fake_quant_straight_through():
    x = torch.randn(4, 8, requires_grad=True)
    fake_quantize_symmetric(x, 4).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_int4_pack_roundtrip():
    q = torch.randint(-8, 8, (5, 6), dtype=torch.int8)
    p = pack_int4(q)
    assert p.shape == (5, 3) and p.dtype == torch.uint8
    assert torch.equal(unpack_int4(p), q)
    u = torch.randint(0, 16, (3, 4), dtype=torch.uint8)
    assert torch.equal(unpack_int4(pack_int4(u), signed=False), u)
    assert pack_int4(torch.tensor([[1, -1]], dtype=torch.int8)).item() == 0xF1


def test_fp8_blockwise_shapes_and_error():
    x = torch.randn(3, 300) * 10
    y, s = fp8_quantize_blockwise(x)
    assert y.dtype == torch.float8_e4m3fn and s.shape == (3, 3)
    err = (fp8_dequantize_blockwise(y, s) - x).abs() / x.abs().clamp_min(1e-3)
    assert err.median() < 0.04  # 3 mantissa bits: relative error <= 2^-4
    w = torch.randn(200, 130)
    yw, sw = fp8_quantize_blockwise(w, block=(128, 128), pow2_scale=True)
    assert sw.shape == (2, 2)
    assert torch.equal(torch.log2(sw), torch.log2(sw).round())  # powers of two
    assert ((fp8_dequantize_blockwise(yw, sw, (128, 128)) - w).abs() <= w.abs() / 8 + sw.max() / 2**9).all()


def test_bad_input_messages():
    with pytest.raises(ValueError, match="bits must be an integer in \\[2, 8\\], got 9"):
        quantize_symmetric(torch.randn(2, 2), 9)
    with pytest.raises(TypeError, match="floating-point"):
        quantize_symmetric(torch.ones(2, 2, dtype=torch.int32), 4)
    with pytest.raises(ValueError, match="NaN"):
        quantize_symmetric(torch.tensor([[float("nan"), 1.0]]), 4)
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.zeros(2, 3, dtype=torch.int8))
    with pytest.raises(ValueError, match="2-D"):
        fp8_quantize_blockwise(torch.randn(2, 2, 128), block=(128, 128))
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda", torch.zeros(1))


def test_auto_backend_is_torch_on_cpu():
    assert resolve_backend("auto", torch.zeros(1)) == "torch"


TRITON_CHECK = r"""
import torch
from papercommon.kernels import *
from papercommon.kernels.quant import fp8_quantize_blockwise_reference
torch.manual_seed(0)
for shape, dim in [((5, 37), -1), ((4, 6, 16), 1), ((3, 128), 0)]:
    x = torch.randn(shape) * 3
    for bits in (4, 8):
        q, s = quantize_symmetric(x, bits, dim, clip_ratio=0.9, backend="triton")
        qr, sr = quantize_symmetric(x, bits, dim, clip_ratio=0.9, backend="torch")
        assert torch.equal(q, qr) and torch.equal(s, sr), (shape, bits)
        a = quantize_asymmetric(x, bits, dim, backend="triton")
        b = quantize_asymmetric(x, bits, dim, backend="torch")
        assert all(torch.equal(u, v) for u, v in zip(a, b)), (shape, bits, "asym")
q = torch.randint(-8, 8, (7, 10), dtype=torch.int8)
assert torch.equal(pack_int4(q, backend="triton"), pack_int4(q, backend="torch"))
for shape, block, pow2 in [((4, 300), (1, 128), False), ((2, 3, 256), (1, 128), True),
                           ((150, 70), (64, 32), False), ((130, 129), (128, 128), True)]:
    x = torch.randn(shape) * torch.logspace(-3, 3, shape[-1])
    x.view(-1)[0] = 0.0
    y, s = fp8_quantize_blockwise(x, block, pow2, backend="triton")
    yr, sr = fp8_quantize_blockwise(x, block, pow2, backend="torch")
    assert torch.equal(s, sr), (shape, block)
    assert torch.equal(y.view(torch.uint8), yr.view(torch.uint8)), (shape, block)
print("TRITON-OK")
"""


def test_triton_kernels_match_reference_interpreted():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-c", TRITON_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert "TRITON-OK" in out.stdout, out.stderr[-3000:]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_kernels_match_reference_cuda():
    out = subprocess.run([sys.executable, "-c", TRITON_CHECK.replace("torch.randn(shape)", "torch.randn(shape, device='cuda')")
                          .replace("torch.randint(-8, 8, (7, 10), dtype=torch.int8)",
                                   "torch.randint(-8, 8, (7, 10), dtype=torch.int8, device='cuda')")
                          .replace("torch.logspace(-3, 3, shape[-1])", "torch.logspace(-3, 3, shape[-1], device='cuda')")],
                         capture_output=True, text=True, timeout=600)
    assert "TRITON-OK" in out.stdout, out.stderr[-3000:]
