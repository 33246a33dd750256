"""GPU checks of the Triton V:N:M matmul: correctness against the torch reference and timing against
dense cuBLAS (``F.linear``) and PyTorch's 2:4 semi-structured sparse matmul, at LLM shapes.

``gpu_checks(quick)`` returns :class:`papercommon.bench.Record` s; importing this module needs no GPU.
Each record: shape (R x C weight, T tokens), dtype, pattern, max_err, tol, ok, ms, baseline_ms (cuBLAS
dense), speedup, semi24_ms and speedup_vs_semi24 (PyTorch 2:4 on a 2:4-pruned weight of the same
shape), TFLOP/s (dense-equivalent 2TRC / time, and executed 2TR(4C/M) / time).
"""

from __future__ import annotations

import torch
from papercommon.bench import Record, benchmark

from vnm_sparse.bench import random_packed
from vnm_sparse.functional import select_vm, vnm_mask, vnm_matmul_reference
from vnm_sparse.kernels import vnm_matmul

TOL = {torch.float16: 1e-2, torch.bfloat16: 2e-2}  # max |err| / max |ref|


def _semi24(w: torch.Tensor, x: torch.Tensor):
    """Time F.linear with a 2:4 SparseSemiStructuredTensor of a 2:4-pruned ``w`` (None, reason on failure)."""
    try:
        from torch.sparse import to_sparse_semi_structured

        w24 = w * vnm_mask(w.float(), 1, 2, 4).to(w.dtype)
        ws = to_sparse_semi_structured(w24)
        return benchmark(lambda: torch.nn.functional.linear(x, ws), warmup=5, rep=20, device="cuda").median_ms, ""
    except Exception as e:  # noqa: BLE001 - the baseline is optional on some GPUs / dtypes
        return None, f"{type(e).__name__}: {e}"[:200]


def check_one(shape: tuple[int, int], v: int, m: int, tokens: int, dtype: torch.dtype) -> Record:
    w, mask, packed = random_packed(shape, v, m, dtype, "cuda")
    x = torch.randn(tokens, shape[1], device="cuda", dtype=dtype)
    out = torch.full((tokens, shape[0]), float("nan"), device="cuda", dtype=dtype)  # poison
    y = vnm_matmul(x, packed, backend="triton", out=out)
    ref = vnm_matmul_reference(x.float(), packed.to(torch.float32))
    err = (y.float() - ref).abs().max().item() / ref.abs().max().item()
    ok = bool(torch.isfinite(y).all().item()) and err <= TOL[dtype]
    dense_w = (w * mask).to(dtype)
    ms = benchmark(lambda: vnm_matmul(x, packed, backend="triton"), warmup=5, rep=20, device="cuda").median_ms
    base = benchmark(lambda: torch.nn.functional.linear(x, dense_w), warmup=5, rep=20, device="cuda").median_ms
    semi, why = _semi24(w, x)
    flops = 2 * tokens * shape[0] * shape[1]
    return Record(
        name=f"vnm_sparse/vnm_matmul/{shape[0]}x{shape[1]}x{tokens}/{v}:2:{m}/{str(dtype)[6:]}",
        config={"R": shape[0], "C": shape[1], "T": tokens, "v": v, "m": m, "dtype": str(dtype),
                "baseline": "cuBLAS F.linear (dense)", "baseline2": "torch to_sparse_semi_structured 2:4"},
        metrics={"max_err": err, "tol": TOL[dtype], "ok": ok, "ms": ms, "baseline_ms": base, "speedup": base / ms,
                 "semi24_ms": semi, "speedup_vs_semi24": (semi / ms) if semi else None, "semi24_note": why,
                 "semi24_speedup_over_dense": (base / semi) if semi else None,
                 "tflops_dense_equiv": flops / ms / 1e9, "tflops_executed": flops * 4 / m / ms / 1e9},
    )


def gpu_checks(quick: bool = False) -> list[Record]:
    """Correctness and speed of the V:N:M kernel on CUDA (empty list without a GPU)."""
    if not torch.cuda.is_available():
        return []
    records = []
    tokens = 2048
    shapes = [(4096, 4096), (11008, 4096), (4096, 11008)]
    patterns = [(64, 4), (64, 5), (64, 8), (64, 16)] if quick else \
        [(64, 4), (64, 5), (64, 6), (64, 8), (64, 16), (16, 8), (32, 8), (128, 8), (128, 5)]
    dtypes = [torch.float16] if quick else [torch.float16, torch.bfloat16]
    # correctness at small awkward shapes first (padding on both axes)
    for shape, v, m in [((96, 83), 32, 5), ((128, 64), 64, 8), ((64, 100), 16, 6)]:
        for dt in dtypes:
            records.append(check_one(shape, v, m, 77, dt))
    for dt in dtypes:
        for shape in (shapes[:2] if quick else shapes):
            for v, m in patterns:
                records.append(check_one(shape, v, m, tokens, dt))
    # sieve-1 input for select_vm on these shapes (fp16)
    table = {}
    for r in records:
        c = r.config
        if c["T"] == tokens and c["dtype"] == str(torch.float16) and c["m"] > 4:
            table.setdefault((c["v"], c["m"]), []).append(r.metrics["speedup"])
    speedups = {k: float(torch.tensor(v).log().mean().exp()) for k, v in table.items()}
    if speedups:
        for s in (1.2, 1.5):
            try:
                sel = select_vm(speedups, s)
                records.append(Record(name=f"vnm_sparse/select_vm/s={s}",
                                      config={"min_speedup": s, "speedups": {f"{k[0]}:2:{k[1]}": v for k, v in speedups.items()}},
                                      metrics={"v": sel.v, "m": sel.m, "speedup": sel.speedup,
                                               "mask_diversity": sel.mask_diversity}))
            except ValueError as e:
                records.append(Record(name=f"vnm_sparse/select_vm/s={s}", config={"min_speedup": s},
                                      metrics={"error": str(e)}))
    return records


if __name__ == "__main__":
    from papercommon.bench import render_table

    recs = gpu_checks(quick=False)
    print(render_table(recs, ["name", "metrics.ok", "metrics.max_err", "metrics.ms", "metrics.baseline_ms",
                              "metrics.speedup", "metrics.semi24_ms", "metrics.speedup_vs_semi24"]))
