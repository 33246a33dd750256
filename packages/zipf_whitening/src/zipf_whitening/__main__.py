"""Command line: ``python -m zipf_whitening {reproduce,list,tables} ...``.

* ``reproduce [--quick|--full] [--only NAME ...] [--out DIR] [--seed N]``: the package's reproductions
  (same as ``papercommon reproduce zipf_whitening``).
* ``tables [--out DIR]``: the README's tables, rendered from the records of a ``reproduce --out DIR`` run;
  exits 1 naming the file when a record is missing or corrupt.

The fit speed is a benchmark: ``uv run python benchmarks/run.py cpu --only zipf_whitening``.
"""

from __future__ import annotations

import argparse
import sys

from papercommon.cli import Command, package_main


def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="packages/zipf_whitening/results/quick", metavar="DIR",
                   help="the --out folder of a reproduce run (default: the committed quick records)")


def _tables(args: argparse.Namespace) -> int:
    from zipf_whitening.report import render_tables

    print(render_tables(args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    return package_main("zipf_whitening", [Command("tables", "render the README tables from the records", _tables,
                                                   _tables_args)], argv)


if __name__ == "__main__":
    sys.exit(main())
