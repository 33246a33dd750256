"""The shared quantization ops: reference vs the dispatched path, in GB/s of input read.

On the CPU both run the torch reference (Triton needs a GPU outside the interpreter), so this measures
the reference's throughput; on a GPU, the Triton kernels against the torch reference.
"""

from __future__ import annotations

from pathlib import Path

import torch
from papercommon.bench import Record, benchmark
from papercommon.kernels import (
    fp8_quantize_blockwise,
    quantize_asymmetric,
    quantize_symmetric,
    resolve_backend,
)


def main(out: Path, quick: bool = True) -> list[Record]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shapes = [(512, 4096)] if quick else [(512, 4096), (4096, 4096), (16384, 8192)]
    ops = {
        "int4-sym-per-token": lambda x, b: quantize_symmetric(x, 4, backend=b),
        "int4-asym-per-token": lambda x, b: quantize_asymmetric(x, 4, backend=b),
        "fp8-1x128": lambda x, b: fp8_quantize_blockwise(x, (1, 128), backend=b),
        "fp8-128x128": lambda x, b: fp8_quantize_blockwise(x, (128, 128), backend=b),
    }
    records = []
    for shape in shapes:
        x = torch.randn(shape, device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
        for name, op in ops.items():
            ref = benchmark(lambda: op(x, "torch"), warmup=2, rep=10, device=device)
            fast_backend = resolve_backend("auto", x)
            fast = benchmark(lambda: op(x, fast_backend), warmup=2, rep=10, device=device)
            gbps = x.numel() * x.element_size() / (fast.median_ms * 1e-3) / 1e9
            records.append(Record(f"quant/{name}/{shape[0]}x{shape[1]}",
                                  config={"op": name, "shape": list(shape), "dtype": str(x.dtype), "device": device,
                                          "backend": fast_backend},
                                  metrics={"ms": fast.median_ms, "reference_ms": ref.median_ms,
                                           "speedup": ref.median_ms / fast.median_ms, "GB/s": gbps}))
    return records
