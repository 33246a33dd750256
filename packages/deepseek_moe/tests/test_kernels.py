"""Triton FP8 GEMM against its torch reference, on the CPU through TRITON_INTERPRET=1 (tiny shapes).

The interpreter flag is read when Triton and the ``@triton.jit`` functions are first imported, so the check
runs in a fresh subprocess with ``TRITON_INTERPRET=1`` set before any import.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import os, torch
    assert os.environ["TRITON_INTERPRET"] == "1"
    torch.set_num_threads(1)
    from deepseek_moe.fp8 import act_quant, weight_quant, fp8_gemm, fp8_gemm_reference
    from deepseek_moe.kernels import fp8_gemm_triton
    torch.manual_seed(0)
    for M, N, K in [(1, 32, 128), (17, 40, 256), (40, 130, 384)]:
        a, b = torch.randn(M, K), torch.randn(N, K) * 0.1
        (aq, as_), (bq, bs) = act_quant(a), weight_quant(b)
        ref = fp8_gemm_reference(aq, as_, bq, bs, out_dtype=torch.float32)
        out = fp8_gemm(aq, as_, bq, bs, backend="triton", out_dtype=torch.float32)
        assert torch.isfinite(out).all()
        err = (out - ref).abs().max().item()
        assert err <= 1e-4 * ref.abs().max().item() + 1e-5, (M, N, K, err)
        out16 = fp8_gemm_triton(aq, as_, bq, bs, out_dtype=torch.bfloat16).float()
        err16 = (out16 - ref).abs().max().item()
        assert err16 <= 1e-2 * ref.abs().max().item(), (M, N, K, err16)
        print("ok", M, N, K, err, err16)
""")


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_fp8_gemm_triton_interpreter_matches_reference():
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert r.stdout.count("ok") == 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_checks():
    from deepseek_moe.gpu_check import gpu_checks

    recs = gpu_checks(quick=True)
    assert recs and all(r.metrics["ok"] for r in recs)
