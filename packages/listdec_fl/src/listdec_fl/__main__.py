"""Command line (``papercommon.cli.package_main``): ``python -m listdec_fl reproduce [--quick|--full] [--only NAME]
[--out DIR] [--seed N]``, ``list``, ``sweep`` (the alpha sweep with overrides) and ``tables`` (README tables from
records; exits 1 when the records are missing or unreadable)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from papercommon.cli import Command, add_run_args, finite_float, package_main, positive_int


def _sweep_args(p: argparse.ArgumentParser) -> None:
    add_run_args(p, out_default="results")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--rounds", type=positive_int, default=None, help="baseline rounds")
    p.add_argument("--lidfl-rounds", type=positive_int, default=None, help="LiD-FL rounds")
    p.add_argument("--seeds", type=positive_int, default=None, help="number of seeds (from --seed)")
    p.add_argument("--n-clients", type=positive_int, default=None)
    p.add_argument("--alphas", type=finite_float, nargs="+", default=None)
    p.add_argument("--aggregators", nargs="+", default=None)
    p.add_argument("--device", default="cpu")


def _sweep(args: argparse.Namespace) -> int:
    import torch
    from papercommon.records import write_record

    from listdec_fl.reproduce import plot_sweep, run_sweep, sweep_claims, sweep_settings

    torch.set_num_threads(1)
    s = {**sweep_settings(args.quick, args.dataset), "seed": args.seed}
    for key, val in (("rounds", args.rounds), ("lidfl_rounds", args.lidfl_rounds), ("seeds", args.seeds),
                     ("n_clients", args.n_clients), ("aggregators", args.aggregators)):
        if val is not None:
            s[key] = val
    if args.rounds:
        s["eval_every"] = args.rounds
    if args.alphas:
        s["alphas"] = args.alphas
        s["lidfl_alphas"] = [a for a in args.alphas if a > 0.5] or args.alphas
    res = run_sweep(s, device=args.device)
    name = f"alpha_sweep_{s['dataset']}_{s['n_clients']}c_{s['lidfl_rounds']}r_{s['seeds']}s"
    claims = sweep_claims(res)
    write_record(args.out, name, config=s, metrics={**res, "claims": [c.to_dict() for c in claims]})
    plot_sweep(res, Path(args.out) / f"{name}.png")
    for c in claims:
        print(f"[{c.verdict}] {c.metric}: {c.ours}")
    return 0


def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", default="packages/listdec_fl/results", metavar="DIR", help="records folder")
    p.add_argument("--pattern", default="alpha_sweep_*.json")


def _tables(args: argparse.Namespace) -> int:
    from papercommon.records import read_records

    from listdec_fl.reproduce import sweep_table

    recs = [r for r in read_records(args.records, args.pattern) if "per_seed" in r["metrics"]]
    if not recs:
        raise ValueError(f"no seed-aggregated alpha-sweep record matching {args.pattern!r} under {args.records}")
    for r in recs:
        print(f"### {r['name']}\n\n{sweep_table(r['metrics'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return package_main("listdec_fl", [
        Command("sweep", "accuracy vs fraction of malicious clients, LiD-FL vs single-model aggregators",
                _sweep, _sweep_args),
        Command("tables", "print the README tables from the records (exit 1 if missing or corrupt)", _tables,
                _tables_args),
    ], argv)


if __name__ == "__main__":
    sys.exit(main())
