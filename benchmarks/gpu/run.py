"""One GPU validation and benchmark run for every Triton kernel in the repository.

On a CUDA machine, with only the repository and the machine's own PyTorch and Triton:

1. measures the card's two ceilings (device-to-device copy GB/s, bf16 matmul TFLOP/s);
2. checks every Triton kernel against its torch reference on fresh random inputs at several shapes,
   with poisoned outputs (papercommon's shared quantization kernels here; each package's kernels through
   its ``<package>.gpu_check.gpu_checks(quick)``);
3. times each kernel against its named baseline (median after warm-up, CUDA events);
4. writes ``papercommon.bench`` records under ``benchmarks/results/gpu/`` and prints a table last.

Usage (from the repository root; no installs needed when torch and triton are present):

    PYTHONPATH=shared/src:$(ls -d packages/*/src | paste -sd:) python benchmarks/gpu/run.py [--quick] [--only PKG ...]
    uv run python benchmarks/gpu/run.py --quick           # inside the workspace environment
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for src in [ROOT / "shared" / "src", *sorted((ROOT / "packages").glob("*/src"))]:
    if str(src) not in sys.path:
        sys.path.append(str(src))

import torch  # noqa: E402
from papercommon.bench import Record, benchmark, render_table  # noqa: E402

# Packages with Triton kernels ship src/<package>/gpu_check.py with gpu_checks(quick) -> list[Record].
KERNEL_PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/src/*/gpu_check.py"))


def ceilings() -> list[Record]:
    """Device-to-device copy bandwidth and dense bf16 matmul throughput."""
    n = 1 << 28  # 1 GiB of fp32
    src, dst = torch.empty(n, device="cuda"), torch.empty(n, device="cuda")
    t = benchmark(lambda: dst.copy_(src), warmup=3, rep=20, device="cuda")
    copy_gbps = 2 * n * 4 / (t.median_ms * 1e-3) / 1e9
    m = 8192
    a, b = torch.randn(m, m, device="cuda", dtype=torch.bfloat16), torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    t2 = benchmark(lambda: a @ b, warmup=3, rep=20, device="cuda")
    tflops = 2 * m**3 / (t2.median_ms * 1e-3) / 1e12
    return [Record("ceiling/d2d-copy", config={"bytes": n * 4}, metrics={"ms": t.median_ms, "GB/s": copy_gbps}),
            Record("ceiling/bf16-matmul", config={"m": m, "n": m, "k": m},
                   metrics={"ms": t2.median_ms, "TFLOP/s": tflops})]


def papercommon_checks(quick: bool, device: str = "cuda") -> list[Record]:
    """The shared quantization kernels: exact codes and scales against the references, then GB/s.

    On ``device="cpu"`` (under ``TRITON_INTERPRET=1``) only the correctness part runs, at tiny shapes.
    """
    from papercommon.kernels import fp8_quantize_blockwise, pack_int4, quantize_asymmetric, quantize_symmetric
    from papercommon.testing import poison_outputs

    def same(a, b):
        a = a.view(torch.uint8) if a.dtype == torch.float8_e4m3fn else a
        b = b.view(torch.uint8) if b.dtype == torch.float8_e4m3fn else b
        return torch.equal(a, b)

    ops = {
        "int4-sym-per-token": lambda x, be: quantize_symmetric(x, 4, backend=be),
        "int8-sym-per-channel": lambda x, be: quantize_symmetric(x, 8, dim=0, backend=be),
        "int4-asym-per-token": lambda x, be: quantize_asymmetric(x, 4, backend=be),
        "fp8-1x128": lambda x, be: fp8_quantize_blockwise(x, (1, 128), backend=be),
        "fp8-128x128-pow2": lambda x, be: fp8_quantize_blockwise(x, (128, 128), pow2_scale=True, backend=be),
        "int4-pack": lambda x, be: (pack_int4(quantize_symmetric(x, 4, backend="torch")[0], backend=be),),
    }
    timed = device == "cuda"
    if timed and torch.cuda.get_device_capability() < (8, 9):
        skipped = [k for k in ops if k.startswith("fp8")]
        ops = {k: v for k, v in ops.items() if k not in skipped}
        print(f"[gpu] papercommon: skipping {skipped}: FP8 e4m3 needs compute capability 8.9+")
    shapes = [(7, 130), (512, 4096)] + ([] if quick else [(8192, 8192)]) if timed else [(3, 130), (4, 256)]
    records = []
    for shape in shapes:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(shape, device=device, dtype=dtype) * torch.logspace(-2, 2, shape[-1], device=device).to(dtype)
            for name, op in ops.items():
                with poison_outputs():
                    out = op(x, "triton")
                ref = op(x, "torch")
                ok = all(same(o, r) for o, r in zip(out, ref))
                if not timed:
                    records.append(Record(f"papercommon/{name}/{shape[0]}x{shape[1]}/{str(dtype).removeprefix('torch.')}",
                                          config={"op": name, "shape": list(shape), "dtype": str(dtype), "device": device},
                                          metrics={"ok": ok, "tol": "exact"}))
                    continue
                fast = benchmark(lambda: op(x, "triton"), warmup=5, rep=20, device="cuda")
                base = benchmark(lambda: op(x, "torch"), warmup=5, rep=20, device="cuda")
                moved = x.numel() * x.element_size() + sum(o.numel() * o.element_size() for o in out)
                records.append(Record(
                    f"papercommon/{name}/{shape[0]}x{shape[1]}/{str(dtype).removeprefix('torch.')}",
                    config={"op": name, "shape": list(shape), "dtype": str(dtype), "baseline": "torch reference"},
                    metrics={"ok": ok, "max_err": 0.0 if ok else float("nan"), "tol": "exact", "ms": fast.median_ms,
                             "baseline_ms": base.median_ms, "speedup": base.median_ms / fast.median_ms,
                             "GB/s": moved / (fast.median_ms * 1e-3) / 1e9}))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer and smaller shapes")
    parser.add_argument("--only", nargs="*", help="restrict to these packages ('papercommon' for the shared kernels)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu")
    parser.add_argument("--interpret", action="store_true",
                        help="CPU test mode under TRITON_INTERPRET=1: the correctness part of the shared kernels at "
                             "tiny shapes, and every package's gpu_check imported (no timing, no records written)")
    args = parser.parse_args(argv)
    if args.interpret:
        import os

        if os.environ.get("TRITON_INTERPRET") != "1":
            print("--interpret needs TRITON_INTERPRET=1 set before Python starts", file=sys.stderr)
            return 2
        records = papercommon_checks(quick=True, device="cpu")
        for pkg in KERNEL_PACKAGES:
            assert callable(importlib.import_module(f"{pkg}.gpu_check").gpu_checks)
        bad = [r.name for r in records if not r.metrics["ok"]]
        print(render_table(records, ["name", "metrics.ok"]))
        print(f"{len(records)} interpreted checks, failed: {bad}")
        return 1 if bad else 0
    if not torch.cuda.is_available():
        print("benchmarks/gpu/run.py needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    suites = {"ceilings": lambda quick: ceilings(), "papercommon": papercommon_checks}
    for pkg in KERNEL_PACKAGES:
        suites[pkg] = importlib.import_module(f"{pkg}.gpu_check").gpu_checks
    if args.only:
        suites = {k: v for k, v in suites.items() if k == "ceilings" or k in args.only}
    records: list[Record] = []
    failures = []
    for name, suite in suites.items():
        t0 = time.perf_counter()
        print(f"[gpu] {name} ...", flush=True)
        try:
            got = suite(args.quick)
        except Exception:  # noqa: BLE001 - report and go on: one GPU window must cover every suite
            failures.append(name)
            print(traceback.format_exc(), file=sys.stderr)
            got = [Record(f"{name}/ERROR", metrics={"ok": False, "error": traceback.format_exc(limit=3)})]
        print(f"[gpu] {name}: {len(got)} records in {time.perf_counter() - t0:.1f}s", flush=True)
        records += got
    for rec in records:
        rec.save(args.out / f"{rec.name.replace('/', '__')}.json")
    bad = [r.name for r in records if r.metrics.get("ok") is False]
    columns = ["name", "metrics.ok", "metrics.max_err", "metrics.ms", "metrics.baseline_ms", "metrics.speedup",
               "metrics.TFLOP/s", "metrics.GB/s"]
    print(render_table(records, columns))
    print(f"{len(records)} records, {len(bad)} failed checks {bad}, suites that raised: {failures}")
    return 1 if bad or failures else 0


if __name__ == "__main__":
    sys.exit(main())
