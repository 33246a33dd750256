"""Command line: ``python -m zipf_whitening {reproduce,bench} ...``.

* ``reproduce [--full] [--only NAME ...] [--out DIR]``: the package's reproductions (same as
  ``papercommon reproduce zipf_whitening``).
* ``bench [--quick] [--out FILE]``: fit + transform speed on all 400k GloVe vectors vs PCA(whiten=True).
* ``tables [RESULTS]``: the README's tables, rendered from the JSON records.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zipf_whitening")
    sub = ap.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("reproduce", help="run the reproductions")
    rp.add_argument("--full", action="store_true", help="the full setting (default: quick)")
    rp.add_argument("--only", nargs="*", help="reproduction names")
    rp.add_argument("--out", default="reproductions")
    bp = sub.add_parser("bench", help="fit/transform speed on 400k GloVe vectors")
    bp.add_argument("--quick", action="store_true")
    bp.add_argument("--out", default=None, help="write the JSON record here")
    tp = sub.add_parser("tables", help="render the README tables from a results folder")
    tp.add_argument("results", nargs="?", default="packages/zipf_whitening/results")
    args = ap.parse_args(argv)
    if args.cmd == "tables":
        from zipf_whitening.report import render_tables

        print(render_tables(args.results))
        return 0
    if args.cmd == "reproduce":
        from papercommon.reproduce import main as papercommon_main

        extra = ["--full"] if args.full else []
        only = ["--only", *args.only] if args.only else []
        return papercommon_main(["reproduce", "zipf_whitening", *extra, *only, "--out", args.out])
    from zipf_whitening.bench import benchmark_fit

    rec = benchmark_fit(quick=args.quick)
    if args.out:
        rec.save(args.out)
    print(json.dumps(rec.metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
