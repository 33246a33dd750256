"""Command line: ``python -m vnm_sparse reproduce [--quick|--full] [--only NAME ..] [--out DIR] [--seed N]``,
``list`` and ``gpu-check [--quick]`` (the papercommon contract)."""

from __future__ import annotations

import sys

from papercommon.cli import Command, package_main


def _gpu_check(args) -> int:
    from papercommon.records import render_table

    from vnm_sparse.gpu_check import gpu_checks

    recs = gpu_checks(quick=args.quick)
    if not recs:
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    print(render_table(recs, ["name", "metrics.ok", "metrics.max_err", "metrics.ms", "metrics.baseline_ms",
                              "metrics.speedup", "metrics.semi24_ms", "metrics.speedup_vs_semi24"]))
    return 0 if all(r.metrics.get("ok", True) for r in recs) else 1


def main(argv: list[str] | None = None) -> int:
    return package_main("vnm_sparse", [
        Command("gpu-check", "Triton kernel checks and timings on CUDA", _gpu_check,
                lambda p: p.add_argument("--quick", action="store_true", help="fewer shapes")),
    ], argv)


if __name__ == "__main__":
    sys.exit(main())
