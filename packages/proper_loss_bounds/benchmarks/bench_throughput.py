"""Throughput benchmark of proper_loss_bounds; writes results/bench_throughput.json.

    uv run python packages/proper_loss_bounds/benchmarks/bench_throughput.py [--quick] [--device cuda]
"""

import argparse
from pathlib import Path

import torch
from proper_loss_bounds.benchmark import run

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    run(Path(__file__).resolve().parents[1] / "results" / f"bench_throughput{suffix}.json", quick=args.quick,
        device=args.device)
