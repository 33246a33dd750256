"""Command line: ``python -m vnm_sparse reproduce [names] [--full] [--out DIR]`` and ``python -m vnm_sparse gpu-check``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vnm_sparse")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("reproduce", help="run reproductions (vit, smollm2, mask-search, storage, kernel-cpu)")
    rp.add_argument("names", nargs="*")
    rp.add_argument("--full", action="store_true", help="the full setting (default: quick)")
    rp.add_argument("--out", default="reproductions")
    gc = sub.add_parser("gpu-check", help="Triton kernel checks and timings on CUDA")
    gc.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.cmd == "reproduce":
        from papercommon.reproduce import main as pk_main

        extra = ["--only", *args.names] if args.names else []
        return pk_main(["reproduce", "vnm_sparse", "--full" if args.full else "--quick", "--out", args.out, *extra])
    from papercommon.bench import render_table

    from vnm_sparse.gpu_check import gpu_checks

    recs = gpu_checks(quick=args.quick)
    if not recs:
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    print(render_table(recs, ["name", "metrics.ok", "metrics.max_err", "metrics.ms", "metrics.baseline_ms",
                              "metrics.speedup", "metrics.semi24_ms", "metrics.speedup_vs_semi24"]))
    return 0 if all(r.metrics.get("ok", True) for r in recs) else 1


if __name__ == "__main__":
    sys.exit(main())
