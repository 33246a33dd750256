"""Fit + transform all 400k GloVe vectors: ZipfianWhitening vs sklearn PCA(whiten=True) and the official recipe.

    uv run python packages/zipf_whitening/benchmarks/bench_fit.py [--quick] [--device cuda]
"""

import argparse
import json
from pathlib import Path

from zipf_whitening.bench import benchmark_fit

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "bench_fit_record.json"))
    args = ap.parse_args()
    rec = benchmark_fit(quick=args.quick, device=args.device)
    rec.save(args.out)
    print(json.dumps(rec.metrics, indent=2))
