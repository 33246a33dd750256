"""Command line: ``python -m polyak_clip {synthetic,neural,train} ...``.

    python -m polyak_clip synthetic --out runs/             # Fig. 1 (seconds), plot + JSON
    python -m polyak_clip neural --quick --out runs/         # Sec. 6.2 at small scale, plot + JSON
    python -m polyak_clip train --task lstm --method inexact_polyak --steps 300
    python -m polyak_clip tables packages/polyak_clip/results/quick/polyak_clip   # README tables from records
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from polyak_clip.neural import TASKS, NeuralConfig, train
from polyak_clip.optim import OPTIMIZERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyak_clip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("synthetic", "neural"):
        p = sub.add_parser(name)
        p.add_argument("--quick", action="store_true")
        p.add_argument("--out", type=Path, default=Path("polyak_clip_runs"))
    t = sub.add_parser("train", help="one run with one method")
    t.add_argument("--task", choices=TASKS, default="nanogpt")
    t.add_argument("--method", choices=sorted(OPTIMIZERS), default="inexact_polyak")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float)
    t.add_argument("--clip", type=float)
    tb = sub.add_parser("tables", help="markdown tables from the records of a reproduction folder")
    tb.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "tables":
        from polyak_clip.report import all_tables

        print(all_tables(args.folder))
        return 0
    if args.cmd == "train":
        r = train(NeuralConfig(task=args.task, steps=args.steps, batch_size=args.batch_size), args.method,
                  args.seed, args.lr, args.clip, progress=True)
        print(json.dumps({k: v for k, v in r.items() if k != "losses"} | {"final_train_loss": r["losses"][-1:]}))
        return 0
    from polyak_clip.reproduce import neural, synthetic

    claims = (synthetic if args.cmd == "synthetic" else neural)(quick=args.quick, out=args.out)
    for c in claims:
        print(f"[{'ok' if c.holds else '--' if c.holds is None else 'NO'}] {c.metric}: paper {c.paper}, ours {c.ours}")
    print(f"plots and records in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
