"""Command line: ``python -m proper_loss_bounds {constant,psi,check,reproduce,bench}``.

Examples::

    python -m proper_loss_bounds constant tsallis-1.5 --norm 1 --classes 4
    python -m proper_loss_bounds psi log --norm 2 --r 1e-6 1e-4 1e-2
    python -m proper_loss_bounds check tsallis-3
    python -m proper_loss_bounds reproduce --quick --out results/quick
    python -m proper_loss_bounds bench --out results/bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def _norm(x: str) -> float:
    return math.inf if x.lower() in ("inf", "infinity") else float(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m proper_loss_bounds", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("constant", help="strong-properness constant of a loss in an s-norm")
    c.add_argument("loss")
    c.add_argument("--norm", type=_norm, default=2.0)
    c.add_argument("--classes", type=int, default=None)
    c.add_argument("--method", default="auto", choices=["auto", "closed", "numeric"])
    p = sub.add_parser("psi", help="best regret bound psi(r) = sup{||p-q||_s : regret <= r}")
    p.add_argument("loss")
    p.add_argument("--norm", type=_norm, default=2.0)
    p.add_argument("--classes", type=int, default=None)
    p.add_argument("--r", type=float, nargs="+", default=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    p.add_argument("--candidates", type=int, default=4096)
    k = sub.add_parser("check", help="properness, strict properness and the paper's two statements")
    k.add_argument("loss")
    k.add_argument("--classes", type=int, default=None)
    k.add_argument("--norm", type=_norm, default=2.0)
    r = sub.add_parser("reproduce", help="run this package's reproductions (same as paperkit reproduce)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True)
    g.add_argument("--full", dest="quick", action="store_false")
    r.add_argument("--only", nargs="*")
    r.add_argument("--out", default="reproductions")
    b = sub.add_parser("bench", help="throughput benchmarks (pairs/s; fused vs autograd)")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--device", default="cpu")
    b.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    if args.cmd == "constant":
        from proper_loss_bounds import get_loss, strong_properness_constant

        lam = strong_properness_constant(get_loss(args.loss), s=args.norm, num_classes=args.classes,
                                         method=args.method)
        print(json.dumps({"loss": args.loss, "s": args.norm, "lambda": lam,
                          "bound": f"||p-q||_s <= sqrt(2 R / {lam:.6g})" if lam > 0 else "not strongly proper"}))
        return 0
    if args.cmd == "psi":
        from proper_loss_bounds import regret_bound

        res = regret_bound(args.loss, args.r, s=args.norm, num_classes=args.classes, num_candidates=args.candidates)
        for rr, ps in zip(res.r, res.psi):
            print(f"r={rr:.3e}  psi={ps:.6e}")
        if len(res.r) >= 2:
            print(f"log-log slope: {res.slope():.4f}")
        return 0
    if args.cmd == "check":
        from proper_loss_bounds import check_half_order, check_nonvacuous_iff_strict

        a = check_nonvacuous_iff_strict(args.loss, args.classes, s=args.norm)
        h = check_half_order(args.loss, args.classes, s=args.norm)
        print(json.dumps({"iff": {"holds": a.holds, **a.details}, "half_order": {"holds": h.holds, **h.details}},
                         indent=1, default=str))
        return 0
    if args.cmd == "reproduce":
        from paperkit.reproduce import main as pk_main

        extra = ["--only", *args.only] if args.only else []
        return pk_main(["reproduce", "proper_loss_bounds", "--quick" if args.quick else "--full",
                        "--out", args.out, *extra])
    if args.cmd == "bench":
        from proper_loss_bounds.benchmark import run

        run(Path(args.out) if args.out else None, quick=args.quick, device=args.device)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
