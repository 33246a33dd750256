"""Command line: ``python -m fastattention {reproduce,list,tables} ...``.

Examples:
    python -m fastattention reproduce --quick --out /tmp/fa   # = papercommon reproduce fastattention --quick
    python -m fastattention tables --records /tmp/fa/fastattention   # exits 1 if a record is missing or corrupt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from papercommon.cli import Command, package_main
from papercommon.records import RecordError, markdown_table, read_records

RESULTS = Path(__file__).resolve().parents[2] / "results" / "fastattention"


def tables(args: argparse.Namespace) -> int:
    """Print the claims of the reproduction records under ``--records`` as one markdown table."""
    rows = []
    for rec in read_records(args.records, "*.json"):
        if "details" in rec.get("name", "") or "claims" not in rec.get("metrics", {}):
            continue
        for c in rec["metrics"]["claims"]:
            verdict = {True: "yes", False: "no", None: "n/a"}[c["holds"]]
            rows.append([rec["config"].get("reproduction", rec["name"]), c["paper_ref"], c["metric"], c["paper"],
                         c["ours"], verdict, c.get("note", "")])
    if not rows:
        raise RecordError(f"no reproduction claim record under {args.records}")
    print(markdown_table(["reproduction", "claim", "metric", "paper", "ours", "verdict", "note"], rows))
    return 0


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=Path, default=RESULTS, help="folder of reproduction records")


def main(argv: list[str] | None = None) -> int:
    return package_main("fastattention", [Command("tables", "print the reproduction claims table", tables,
                                                  _table_args)], argv)


if __name__ == "__main__":
    sys.exit(main())
