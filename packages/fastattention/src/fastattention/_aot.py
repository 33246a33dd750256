"""Compile the Triton kernels for a GPU target without a GPU (catches type and lowering errors on the CPU).

``compile_kernels(arch=90)`` returns {kernel name: shared-memory bytes}; it raises on a compile error.
"""

from __future__ import annotations

import inspect

_PTR = {"float16": "*fp16", "bfloat16": "*bf16", "float32": "*fp32"}


def _signature(fn, tensor_names, fp32_ptrs, consts):
    sig = {}
    for n in inspect.signature(fn.fn).parameters:
        if n in consts:
            sig[n] = "constexpr"
        elif n in tensor_names:
            sig[n] = tensor_names[n]
        elif n in fp32_ptrs:
            sig[n] = "*fp32"
        elif n == "qk_scale":
            sig[n] = "fp32"
        else:
            sig[n] = "i32"
    return sig


def compile_kernels(arch: int = 90, dtype: str = "bfloat16", d: int = 128, tiling=None) -> dict[str, int]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from fastattention import kernels as K
    from fastattention.config import TilingConfig

    t = tiling or TilingConfig()
    ptr = _PTR[dtype]
    prec = "ieee" if dtype == "float32" else "tf32"
    bd = max(16, triton.next_power_of_2(d))
    target = GPUTarget("cuda", arch, 32)
    jobs = {
        "fwd": (K._attn_fwd_kernel, {n: ptr for n in ("Q", "K", "V", "O")}, {"LSE"},
                {"D": d, "BLOCK_D": bd, "BLOCK_M": t.triton_block_m, "BLOCK_N": t.triton_block_n,
                 "BLOCK_N_OUTER": t.triton_block_n_outer, "PREC": prec}, t.triton_num_warps),
        "bwd_dkdv": (K._attn_bwd_dkdv_kernel, {n: ptr for n in ("Q", "K", "V", "DO", "DK", "DV")}, {"LSE2", "DELTA"},
                     {"D": d, "BLOCK_D": bd, "BLOCK_M": t.triton_bwd_block_m, "BLOCK_N": t.triton_bwd_block_n,
                      "PREC": prec}, 4 if d <= 64 else 8),
        "bwd_dq": (K._attn_bwd_dq_kernel, {n: ptr for n in ("Q", "K", "V", "DO", "DQ")}, {"LSE2", "DELTA"},
                   {"D": d, "BLOCK_D": bd, "BLOCK_M": t.triton_bwd_block_n, "BLOCK_N": t.triton_bwd_block_m,
                    "PREC": prec}, 4 if d <= 64 else 8),
    }
    out = {}
    for name, (fn, tensors, fp32_ptrs, consts, warps) in jobs.items():
        src = ASTSource(fn=fn, signature=_signature(fn, tensors, fp32_ptrs, consts), constexprs=consts)
        c = triton.compile(src, target=target, options={"num_warps": warps, "num_stages": t.triton_num_stages})
        out[name] = c.metadata.shared
    return out
