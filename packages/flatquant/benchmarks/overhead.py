"""Online transform overhead relative to the linear layer it feeds (paper Table 6), on this machine.

    uv run python packages/flatquant/benchmarks/overhead.py [--tokens 2048] [--hidden 4096]

Writes ``packages/flatquant/results/overhead-<tokens>x<hidden>.json``. On a GPU, ``flatquant.gpu_check``
times the fused Triton kernel instead of the unfused torch path measured here.
"""

import argparse
from pathlib import Path

from flatquant.reproduce import transform_overhead
from papercommon.cli import positive_int
from papercommon.records import write_record

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=positive_int, default=2048)
    p.add_argument("--hidden", type=positive_int, default=4096)
    p.add_argument("--rep", type=positive_int, default=10)
    a = p.parse_args()
    r = transform_overhead(a.tokens, a.hidden, rep=a.rep)
    write_record(Path(__file__).resolve().parents[1] / "results", f"overhead-{a.tokens}x{a.hidden}", config=vars(a),
                 metrics=r)
    for k, v in r.items():
        print(f"{k:28s} {v:.4g}")
