"""CPU performance of every package's fast path against the baseline a user would reach for (issue 17).

Each package owns one module ``benchmarks/cpu/<package>.py`` with ``records(quick: bool) -> list[Record]``,
built with :func:`papercommon.bench.interleaved` (candidates and baseline round-robin in one process,
median of >= 7 runs) and :func:`papercommon.bench.ratio_record` (ratio, target, met). This script runs
them, writes one JSON record per row and ``<package>.md`` (the table each package README quotes) under
``benchmarks/results/cpu/``.

Usage:
    uv run python benchmarks/run.py cpu                       # every package
    uv run python benchmarks/run.py cpu --only polyak_clip    # one package
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from papercommon.bench import Record
from papercommon.records import markdown_table

HERE = Path(__file__).resolve().parent / "cpu"


def modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(HERE.glob("*.py")) if not p.stem.startswith("_")}


def table(records: list[Record]) -> str:
    """The README performance table: path | baseline | ours / baseline | target | met."""
    rows = []
    for r in records:
        m = r.metrics
        rows.append([r.name, r.config["baseline"], f"{m['candidate_ms']:.3g} ms", f"{m['baseline_ms']:.3g} ms",
                     f"{m['ratio']:.3g}x", f"<= {m['target']:.3g}x", "yes" if m["met"] else "**missed**",
                     m.get("note", "")])
    return markdown_table(["path", "baseline", "ours", "baseline time", "time ratio", "target", "met", "note"], rows)


def main(out: Path, quick: bool = True, only: list[str] | None = None) -> list[Record]:
    found = modules()
    unknown = sorted(set(only or []) - set(found))
    if unknown:
        raise SystemExit(f"unknown package(s) {unknown}; known: {sorted(found)}")
    records: list[Record] = []
    for pkg in only or found:
        spec = importlib.util.spec_from_file_location(f"bench_cpu_{pkg}", found[pkg])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        recs = module.records(quick)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{pkg}.md").write_text(
            f"<!-- written by `uv run python benchmarks/run.py cpu --only {pkg}`; do not edit -->\n" + table(recs))
        records += recs
    return records
