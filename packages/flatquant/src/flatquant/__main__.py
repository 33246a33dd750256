"""Command line: ``python -m flatquant <reproduction> [--quick|--full] [--out DIR] [overrides]``.

Examples:
    python -m flatquant smollm2-ppl --quick
    python -m flatquant smollm2-ppl --full --nsamples 4 --seqlen 64 --epochs 2 --batch-size 1 --eval-tokens 512
    python -m flatquant overhead --quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from flatquant import reproduce as R

    names = {r.name: r for r in R.REPRODUCTIONS}
    p = argparse.ArgumentParser(prog="python -m flatquant", description="FlatQuant reproductions")
    p.add_argument("name", choices=sorted(names))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True)
    g.add_argument("--full", dest="quick", action="store_false")
    p.add_argument("--out", default="reproductions/flatquant")
    p.add_argument("--nsamples", type=int)
    p.add_argument("--seqlen", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--eval-tokens", type=int)
    p.add_argument("--only", nargs="*", help="method runs to restrict to (smollm2-ppl, ablation)")
    a = p.parse_args(argv)
    override = {"nsamples": a.nsamples, "seqlen": a.seqlen, "epochs": a.epochs, "batch_size": a.batch_size,
                "eval_tokens": a.eval_tokens}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if any(v is not None for v in override.values()) or a.only:
        runners = {"smollm2-ppl": R.run_smollm2, "ablation": R.run_ablation, "minilm-embeddings": R.run_minilm}
        if a.name not in runners:
            p.error(f"overrides are supported for {sorted(runners)}, got {a.name}")
        kw = {"only": a.only} if a.only and a.name != "minilm-embeddings" else {}
        res = runners[a.name](a.quick, out, **kw, **override)
        print(json.dumps(res, indent=1, default=str))
        return 0
    for c in names[a.name](quick=a.quick, out=out):
        print(f"{c.paper_ref:10s} {c.metric:60s} paper={c.paper!s:14s} ours={c.ours!s:14s} holds={c.holds} {c.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
