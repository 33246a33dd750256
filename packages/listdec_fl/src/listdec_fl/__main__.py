"""Command line: ``python -m listdec_fl sweep [--quick|--full] [--dataset digits] [--out results/]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m listdec_fl", description="LiD-FL reproductions")
    sub = p.add_subparsers(dest="cmd", required=True)
    sw = sub.add_parser("sweep", help="accuracy vs fraction of malicious clients, LiD-FL vs single-model aggregators")
    g = sw.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True)
    g.add_argument("--full", dest="quick", action="store_false")
    sw.add_argument("--dataset", default="digits")
    sw.add_argument("--rounds", type=int, default=None, help="override the rounds")
    sw.add_argument("--n-clients", type=int, default=None)
    sw.add_argument("--lidfl-rounds", type=int, default=None, help="LiD-FL rounds (default: --rounds)")
    sw.add_argument("--alphas", type=float, nargs="+", default=None)
    sw.add_argument("--aggregators", nargs="+", default=None)
    sw.add_argument("--device", default="cpu")
    sw.add_argument("--out", default="results")
    sw.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: the batched ops are small, threads mostly add overhead)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    from papercommon.bench import Record

    from listdec_fl.reproduce import alpha_sweep, plot_sweep, sweep_claims, sweep_settings

    s = sweep_settings(args.quick, args.dataset)
    if args.rounds:
        s["rounds"], s["eval_every"] = args.rounds, max(1, args.rounds // 10)
        s["lidfl_rounds"] = args.rounds if args.lidfl_rounds is None else args.lidfl_rounds
    elif args.lidfl_rounds is not None:
        s["lidfl_rounds"] = args.lidfl_rounds
    if args.n_clients:
        s["n_clients"] = args.n_clients
    if args.alphas:
        s["alphas"] = args.alphas
    if args.aggregators:
        s["aggregators"] = args.aggregators
    res = alpha_sweep(s, device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"alpha_sweep_{s['dataset']}_{s['n_clients']}c_{s['rounds']}r"
    claims = [c.to_dict() for c in sweep_claims(res)]
    Record(name, config=s, metrics={**res, "claims": claims}).save(out / f"{name}.json")
    plot_sweep(res, out / f"{name}.png")
    print(json.dumps(claims, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
