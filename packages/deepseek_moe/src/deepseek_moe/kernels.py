"""Triton FP8 block-scaled GEMM (DeepSeek-V3 Sec. 3.3): ``C = (A * s_A) @ (B * s_B)^T``.

A is e4m3 [M, K] with one fp32 scale per 1x128 tile (``a_s`` [M, K/128], per token per 128 channels);
B is e4m3 [N, K] with one fp32 scale per 128x128 block (``b_s`` [ceil(N/128), K/128]). The kernel walks K
in 128-wide steps; each step is one tensor-core ``tl.dot`` on the raw fp8 tiles whose fp32 partial
result is scaled by ``a_s[:, k] * b_s[n_block, k]`` and added to an fp32 accumulator: the paper's
"promotion to CUDA cores" every N_C = 128 elements, which keeps the e4m3 products' limited
accumulation precision from compounding over long K.

Importing this module never needs Triton or a GPU; :func:`fp8_gemm_triton` raises if Triton is missing.
On the CPU the kernel runs under ``TRITON_INTERPRET=1`` (tests use tiny shapes).
"""

from __future__ import annotations

import os

import torch
from papercommon.kernels import import_triton
from torch import Tensor

triton, tl = import_triton()
HAS_TRITON = triton is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


if HAS_TRITON:

    @triton.jit
    def _fp8_gemm_kernel(a_ptr, b_ptr, c_ptr, a_s_ptr, b_s_ptr, M, N, K,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                         SCALE_BLOCK: tl.constexpr):
        # Stage 0: which [BLOCK_M, BLOCK_N] tile of C this program owns.
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        k_blocks = K // BLOCK_K
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        m_ok = rm < M
        n_ok = rn < N
        a_ptrs = a_ptr + rm[:, None] * K + rk[None, :]  # [BM, BK] row-major A
        b_ptrs = b_ptr + rn[None, :] * K + rk[:, None]  # [BK, BN] view of row-major B (B^T)
        a_s_ptrs = a_s_ptr + rm * k_blocks  # one scale per row and K block
        b_s_ptrs = b_s_ptr + (rn // SCALE_BLOCK) * k_blocks  # one scale per 128 output columns and K block
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        # Stage 1: per K block, an fp8 dot with fp32 output, rescaled and promoted into the fp32 accumulator.
        for kb in range(0, k_blocks):
            a = tl.load(a_ptrs, mask=m_ok[:, None], other=0.0)
            b = tl.load(b_ptrs, mask=n_ok[None, :], other=0.0)
            a_s = tl.load(a_s_ptrs + kb, mask=m_ok, other=0.0)
            b_s = tl.load(b_s_ptrs + kb, mask=n_ok, other=0.0)
            acc += tl.dot(a, b) * a_s[:, None] * b_s[None, :]
            a_ptrs += BLOCK_K
            b_ptrs += BLOCK_K
        # Stage 2: write the tile in the output dtype.
        c_ptrs = c_ptr + rm[:, None] * N + rn[None, :]
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])

    _GPU_CONFIGS = [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm in (16, 32, 64, 128) for bn in (64, 128) for s in (3, 4) for w in (4, 8)
        if not (bm == 128 and w == 4)
    ]

    # Same kernel, autotuned per (M, N, K) on the GPU (the interpreter runs one fixed configuration).
    _fp8_gemm_kernel_tuned = triton.autotune(configs=_GPU_CONFIGS, key=["M", "N", "K"])(_fp8_gemm_kernel)


def fp8_gemm_triton(a: Tensor, a_s: Tensor, b: Tensor, b_s: Tensor, *, block: int = 128,
                    out_dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """Triton block-scaled FP8 GEMM; arguments as :func:`deepseek_moe.fp8.fp8_gemm` (already validated)."""
    if not HAS_TRITON:
        raise RuntimeError("fp8_gemm_triton: Triton is not installed; use backend='torch'")
    M, K = a.shape
    N = b.shape[0]
    c = torch.empty(M, N, dtype=out_dtype, device=a.device)
    if _interpreting() or not a.is_cuda:
        bm = 16 if M <= 16 else 32
        grid = (triton.cdiv(M, bm), triton.cdiv(N, 32))
        _fp8_gemm_kernel[grid](a, b, c, a_s, b_s, M, N, K, BLOCK_M=bm, BLOCK_N=32, BLOCK_K=block,
                               SCALE_BLOCK=block)
    else:
        def grid(meta):
            return (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(N, meta["BLOCK_N"]))

        _fp8_gemm_kernel_tuned[grid](a, b, c, a_s, b_s, M, N, K, BLOCK_K=block, SCALE_BLOCK=block)
    return c
