"""Command line: ``python -m polyak_clip {reproduce,list,train,tables} ...``.

    python -m polyak_clip reproduce --quick --out runs      # = papercommon reproduce polyak_clip --quick
    python -m polyak_clip reproduce --only synthetic         # Fig. 1 only (seconds)
    python -m polyak_clip train --task lstm --method inexact_polyak --steps 300
    python -m polyak_clip tables packages/polyak_clip/results/quick/polyak_clip   # exits 1 on a missing record
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from papercommon.cli import Command, nonnegative_int, package_main, positive_float, positive_int

from polyak_clip.neural import TASKS
from polyak_clip.optim import OPTIMIZERS


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=TASKS, default="nanogpt")
    p.add_argument("--method", choices=sorted(OPTIMIZERS), default="inexact_polyak")
    p.add_argument("--steps", type=positive_int, default=300, help="also Inexact Polyak's T")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--lr", type=positive_float, help="clipped_sgd's learning rate")
    p.add_argument("--clip", type=positive_float, help="clipped_sgd's threshold (default: none)")
    p.add_argument("--out", default=None, metavar="DIR", help="also write a record <DIR>/train.json")


def _train(args: argparse.Namespace) -> int:
    from papercommon.records import write_record

    from polyak_clip.neural import NeuralConfig, train

    cfg = NeuralConfig(task=args.task, steps=args.steps, batch_size=args.batch_size)
    r = train(cfg, args.method, args.seed, args.lr, args.clip, progress=True)
    result = {k: v for k, v in r.items() if k != "losses"} | {"first_train_loss": r["losses"][0],
                                                              "final_train_loss": r["losses"][-1]}
    if args.out:
        write_record(args.out, "train", config=cfg.to_dict() | {"method": args.method, "seed": args.seed},
                     metrics=result | {"losses": r["losses"]})
    print(json.dumps(result))
    return 0


def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", type=Path, nargs="?", default=Path("packages/polyak_clip/results/quick/polyak_clip"),
                   help="a reproduction output folder (default: the committed quick records)")


def _tables(args: argparse.Namespace) -> int:
    from polyak_clip.report import all_tables

    print(all_tables(args.folder))
    return 0


def main(argv: list[str] | None = None) -> int:
    return package_main("polyak_clip", [
        Command("train", "train one network with one method (Sec. 6.2 setting)", _train, _train_args),
        Command("tables", "README tables from the records of a reproduction folder (exit 1 if missing/corrupt)",
                _tables, _tables_args),
    ], argv, description=__doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
