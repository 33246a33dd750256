"""Command line: ``python -m flatquant reproduce [--quick|--full] [--only NAME ..] [--out DIR] [--seed N]``,
``python -m flatquant list``, and ``python -m flatquant official --epochs 2 5`` (the official-setting runs alone).

Examples:
    python -m flatquant reproduce --quick --only smollm2-ppl
    python -m flatquant official --epochs 2 --out packages/flatquant/results/official
"""

from __future__ import annotations

import sys


def _official_args(p) -> None:
    from papercommon.cli import nonnegative_int, positive_int

    p.add_argument("--epochs", type=positive_int, nargs="+", default=[2, 5], help="calibration epochs (default: 2 5)")
    p.add_argument("--nsamples", type=positive_int, default=None,
                   help="calibration sequences (default: the official 32; more = the package-default variant)")
    p.add_argument("--lac-scope", choices=("linear", "input"), default="linear",
                   help="learnable activation clipping per quantized linear (official, default) or one pair per "
                        "online transform shared by the linears it feeds (records get a -lacinput suffix)")
    p.add_argument("--out", default="packages/flatquant/results/official", metavar="DIR")
    p.add_argument("--seed", type=nonnegative_int, default=0, metavar="N")


def _official(args) -> int:
    from pathlib import Path

    from flatquant.reproduce import run_official

    kw = {"lac_scope": args.lac_scope} | ({} if args.nsamples is None else {"nsamples": args.nsamples})
    n = "" if args.nsamples is None else f"-n{args.nsamples}"
    lac = "" if args.lac_scope == "linear" else f"-lac{args.lac_scope}"
    for e in args.epochs:
        m = run_official(e, Path(args.out), args.seed, name=f"official-flatquant-{e}ep{n}{lac}-seed{args.seed}", **kw)
        print(f"{e} epochs: Lee PPL {m['ppl']:.2f} (official code: {m['official_code_ppl']}), "
              f"{m['seconds_per_layer']:.1f} s/layer, {m['cpu_seconds_per_layer']:.1f} CPU s/layer")
    return 0


def main(argv: list[str] | None = None) -> int:
    from papercommon.cli import Command, package_main

    return package_main("flatquant", [
        Command("official", "FlatQuant W4A4KV4 on the official code's setting (SmolLM2, 32x256 Lee tokens)",
                _official, _official_args)], argv)


if __name__ == "__main__":
    sys.exit(main())
