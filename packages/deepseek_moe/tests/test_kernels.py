"""Triton FP8 GEMM against its torch reference, on the CPU through TRITON_INTERPRET=1 (tiny shapes)."""

import importlib
import importlib.util

import pytest
import torch


@pytest.fixture
def interpreted_kernels(monkeypatch):
    """deepseek_moe.kernels with its @triton.jit functions built in interpreter mode (the flag is read when the
    decorator runs, so the module is (re)loaded with TRITON_INTERPRET=1 set)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    import deepseek_moe.kernels as K

    return importlib.reload(K)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
@pytest.mark.parametrize("M, N, K", [(1, 32, 128), (17, 40, 256), (40, 130, 384)])
def test_fp8_gemm_triton_interpreter_matches_reference(interpreted_kernels, M, N, K):
    from deepseek_moe.fp8 import act_quant, fp8_gemm, fp8_gemm_reference, weight_quant

    torch.manual_seed(0)
    a, b = torch.randn(M, K), torch.randn(N, K) * 0.1
    (aq, as_), (bq, bs) = act_quant(a), weight_quant(b)
    ref = fp8_gemm_reference(aq, as_, bq, bs, out_dtype=torch.float32)
    out = fp8_gemm(aq, as_, bq, bs, backend="triton", out_dtype=torch.float32)
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max().item() <= 1e-4 * ref.abs().max().item() + 1e-5
    out16 = interpreted_kernels.fp8_gemm_triton(aq, as_, bq, bs, out_dtype=torch.bfloat16)
    torch.testing.assert_close(out16.float(), ref, atol=2e-2 * ref.abs().max().item(), rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_checks():
    from deepseek_moe.gpu_check import gpu_checks

    recs = gpu_checks(quick=True)
    assert recs and all(r.metrics["ok"] for r in recs)
