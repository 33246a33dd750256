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


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_tables(folder: Path, bench: Path | None = None) -> str:
    """Reproduction claims as ``Paper | Ours | Δ | seeds | record`` rows, and the benchmark tables."""
    from papercommon.bench import render_table

    lines = ["| reproduction | claim | metric | paper | ours | Δ | seeds | holds | record |", "|" + "---|" * 9]
    for rec_path in sorted((folder / "proper_loss_bounds").glob("*.json")):
        if rec_path.name.endswith(".data.json"):
            continue
        rec = json.loads(rec_path.read_text())
        seeds = "1 (search seed 0)"
        data = rec_path.with_name(rec_path.stem + ".data.json")
        if rec["config"]["reproduction"] == "learning-curve" and data.exists():
            seeds = str(len(json.loads(data.read_text())["config"]["seeds"]))
        for c in rec["metrics"]["claims"]:
            paper, ours = c["paper"], c["ours"]
            delta = f"{ours - paper:+.3g}" if isinstance(paper, (int, float)) and isinstance(ours, (int, float)) else "-"
            holds = {True: "yes", False: "no", None: "-"}[c["holds"]]
            lines.append(f"| {rec['config']['reproduction']} | {c['paper_ref']} | {c['metric']} | {_fmt(paper)} | "
                         f"{_fmt(ours)} | {delta} | {seeds} | {holds} | `{rec_path.relative_to(folder.parent.parent)}` |")
    out = "\n".join(lines) + "\n"
    if bench is not None and bench.exists():
        recs = json.loads(bench.read_text())
        reg = [r for r in recs if "/regret/" in r["name"]]
        mod = [r for r in recs if "/module/" in r["name"]]
        out += "\n" + render_table(reg, ["name", "config.K", "config.pairs", "metrics.pairs_per_s",
                                         "metrics.baseline_pairs_per_s", "metrics.speedup"])
        out += "\n" + render_table(mod, ["name", "config.B", "config.K", "metrics.fused_ms", "metrics.autograd_ms",
                                         "metrics.speedup", "metrics.examples_per_s"])
    return out


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
    r = sub.add_parser("reproduce", help="run this package's reproductions (same as papercommon reproduce)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True)
    g.add_argument("--full", dest="quick", action="store_false")
    r.add_argument("--only", nargs="*")
    r.add_argument("--out", default="reproductions")
    t = sub.add_parser("tables", help="markdown tables (README) from reproduction and benchmark records")
    t.add_argument("folder", help="reproduction output folder (containing proper_loss_bounds/*.json)")
    t.add_argument("--bench", default=None, help="benchmark JSON list (bench --out)")
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
        from papercommon.reproduce import main as pk_main

        extra = ["--only", *args.only] if args.only else []
        return pk_main(["reproduce", "proper_loss_bounds", "--quick" if args.quick else "--full",
                        "--out", args.out, *extra])
    if args.cmd == "tables":
        print(render_tables(Path(args.folder), Path(args.bench) if args.bench else None))
        return 0
    if args.cmd == "bench":
        from proper_loss_bounds.benchmark import run

        run(Path(args.out) if args.out else None, quick=args.quick, device=args.device)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
