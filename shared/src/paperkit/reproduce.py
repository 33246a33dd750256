"""The reproduction registry and the ``paperkit`` command line.

Each package registers its reproductions under the entry-point group ``paperkit.reproductions``: the
entry point names a list of :class:`Reproduction` objects (usually ``<package>.reproduce:REPRODUCTIONS``).
A reproduction takes ``quick`` and an output folder and returns :class:`Claim` s: what the paper says,
what we measured, and whether the claim holds.

Example:
    >>> from paperkit.reproduce import Claim, reproduction
    >>> @reproduction("fig1-norms", "Rare words get larger norms after whitening")
    ... def fig1(quick: bool, out):
    ...     rho = 0.8  # measured
    ...     return [Claim("Fig. 1", "Spearman(norm, -log p)", "> 0", rho, holds=rho > 0)]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "paperkit.reproductions"


@dataclass
class Claim:
    """One checkable statement of a paper and what we measured.

    Args:
        paper_ref: where the paper states it ("Table 2", "Thm. 3", "Fig. 4").
        metric: what is measured, with its unit ("WikiText-2 perplexity", "Spearman x100").
        paper: the paper's value (a number) or its qualitative claim (a string, e.g. "> RTN").
        ours: our measured value.
        holds: whether the claim holds on our run (None if there is nothing to compare).
        note: setting, deviation or caveat (model, data, scale).
    """

    paper_ref: str
    metric: str
    paper: Any
    ours: Any
    holds: bool | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


@dataclass
class Reproduction:
    """A named reproduction: ``fn(quick, out_dir) -> list[Claim]``."""

    name: str
    description: str
    fn: Callable[[bool, Path], Sequence[Claim]]
    package: str = field(default="")

    def __call__(self, quick: bool = True, out: Path | str = "reproductions") -> list[Claim]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        claims = list(self.fn(quick, out))
        for c in claims:
            if not isinstance(c, Claim):
                raise TypeError(f"reproduction {self.name!r} must return Claims, got {type(c).__name__}")
        return claims


def reproduction(name: str, description: str = "") -> Callable[[Callable], Reproduction]:
    """Decorator turning ``fn(quick: bool, out: Path) -> list[Claim]`` into a :class:`Reproduction`."""

    def wrap(fn: Callable) -> Reproduction:
        return Reproduction(name=name, description=description or (fn.__doc__ or "").strip().split("\n")[0], fn=fn)

    return wrap


def discover() -> dict[str, list[Reproduction]]:
    """All installed packages' reproductions, by package name (sorted)."""
    found: dict[str, list[Reproduction]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        repros = list(ep.load())
        for r in repros:
            r.package = ep.name
        found[ep.name] = repros
    return dict(sorted(found.items()))


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 0) == 0:
        return _jsonable(v.item())
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return str(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def run(
    packages: Sequence[str] | None = None, *, quick: bool = True, out: Path | str = "reproductions",
    only: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Run reproductions and write one JSON record each plus ``SUMMARY.md`` under ``out``.

    Args:
        packages: package names to run (default: all installed).
        quick: the small CPU setting (minutes) instead of the full one.
        out: output folder.
        only: optional reproduction names to restrict to.

    Returns:
        The list of written records (dicts).
    """
    from tqdm.auto import tqdm

    from paperkit.bench import Record

    registry = discover()
    if not registry:
        raise SystemExit("no paperkit package with reproductions is installed (entry-point group "
                         f"{ENTRY_POINT_GROUP!r}); install one, e.g. `pip install ./packages/zipf_whitening`")
    packages = list(packages or registry)
    unknown = [p for p in packages if p not in registry]
    if unknown:
        raise SystemExit(f"unknown package(s) {unknown}; known: {sorted(registry)}")
    jobs = [r for p in packages for r in registry[p] if not only or r.name in only]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for r in (bar := tqdm(jobs, desc="reproduce", unit="repro")):
        bar.set_postfix_str(f"{r.package}/{r.name}")
        t0 = time.perf_counter()
        try:
            claims, error = r(quick=quick, out=out / r.package), None
        except Exception as e:  # noqa: BLE001 - one failing reproduction must not hide the others
            claims, error = [], f"{type(e).__name__}: {e}"
        rec = Record(
            name=f"{r.package}/{r.name}",
            config={"package": r.package, "reproduction": r.name, "quick": quick},
            metrics={"claims": [c.to_dict() for c in claims], "seconds": time.perf_counter() - t0,
                     "error": error},
        )
        rec.save(out / r.package / f"{r.name}.json")
        records.append(rec.to_dict())
    (out / "SUMMARY.md").write_text(summary_markdown(records))
    return records


def summary_markdown(records: Sequence[dict[str, Any]]) -> str:
    """Render reproduction records as a markdown table (package, claim, paper, ours, holds)."""
    lines = ["| package | reproduction | claim | metric | paper | ours | holds |",
             "|---|---|---|---|---|---|---|"]
    for rec in records:
        m, c = rec["metrics"], rec["config"]
        if m.get("error"):
            lines.append(f"| {c['package']} | {c['reproduction']} | - | - | - | ERROR: {m['error']} | no |")
        for cl in m["claims"]:
            holds = {True: "yes", False: "no", None: "-"}[cl["holds"]]
            lines.append(f"| {c['package']} | {c['reproduction']} | {cl['paper_ref']} | {cl['metric']} | "
                         f"{_fmt(cl['paper'])} | {_fmt(cl['ours'])} | {holds} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paperkit", description="Reproduce the papers of paperkit.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list installed reproductions")
    rp = sub.add_parser("reproduce", help="run reproductions, write JSON records and SUMMARY.md")
    rp.add_argument("packages", nargs="*", help="package names (default: all)")
    g = rp.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True, help="small CPU setting")
    g.add_argument("--full", dest="quick", action="store_false", help="the full setting")
    rp.add_argument("--only", nargs="*", help="reproduction names to restrict to")
    rp.add_argument("--out", default="reproductions", help="output folder (default: reproductions)")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        registry = discover()
        if not registry:
            print(f"no package registers reproductions under {ENTRY_POINT_GROUP!r}")
            return 1
        for pkg, repros in registry.items():
            for r in repros:
                print(f"{pkg:20s} {r.name:28s} {r.description}")
        return 0
    records = run(args.packages, quick=args.quick, out=args.out, only=args.only)
    print((Path(args.out) / "SUMMARY.md").read_text())
    failed = [r["name"] for r in records if r["metrics"]["error"]]
    if failed:
        print(f"{len(failed)} reproduction(s) raised: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
