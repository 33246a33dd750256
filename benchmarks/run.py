"""Run cross-package benchmark scripts; each writes papercommon Records under benchmarks/results/.

A benchmark script is ``benchmarks/bench_<name>.py`` with ``main(out: Path, quick: bool) -> list[Record]``.

Usage:
    uv run python benchmarks/run.py                 # every benchmark, quick settings
    uv run python benchmarks/run.py quant --full    # one benchmark, full settings
    uv run python benchmarks/run.py cpu --only zipf_whitening
    uv run python benchmarks/run.py --list
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import sys
from pathlib import Path

from papercommon.bench import render_table

HERE = Path(__file__).resolve().parent


def available() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmark names (default: all)")
    parser.add_argument("--full", action="store_true", help="full settings instead of quick ones")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="passed to benchmarks that take it (cpu: packages)")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    found = available()
    if args.list:
        print("\n".join(found))
        return 0
    unknown = sorted(set(args.names) - set(found))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {sorted(found)}")
    for name in args.names or found:
        module = load(found[name])
        kwargs = {"only": args.only} if args.only and "only" in inspect.signature(module.main).parameters else {}
        records = module.main(args.out / name, quick=not args.full, **kwargs)
        for rec in records:
            rec.save(args.out / name / f"{re.sub(r'[^A-Za-z0-9.+-]+', '_', rec.name).strip('_')}.json")
        print(f"## {name}\n\n{render_table(records)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
