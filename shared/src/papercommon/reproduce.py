"""The reproduction registry and the ``papercommon`` command line.

Each package registers its reproductions under the entry-point group ``papercommon.reproductions``: the
entry point names a list of :class:`Reproduction` objects (usually ``<package>.reproduce:REPRODUCTIONS``).
A reproduction takes ``quick``, an output folder and (optionally) ``seed``, and returns :class:`Claim` s:
what the paper says, what we measured, and the verdict (yes, no, or n/a with the reason).

Example:
    >>> from papercommon.reproduce import Claim, reproduction
    >>> @reproduction("fig1-norms", "Rare words get larger norms after whitening")
    ... def fig1(quick: bool, out, seed: int = 0):
    ...     rho = 0.8  # measured
    ...     return [Claim("Fig. 1", "Spearman(norm, -log p)", "> 0", rho, holds=rho > 0)]
"""

from __future__ import annotations

import argparse
import inspect
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from papercommon.records import Record, jsonable, markdown_table

ENTRY_POINT_GROUP = "papercommon.reproductions"


@dataclass
class Claim:
    """One checkable statement of a paper and what we measured.

    Args:
        paper_ref: where the paper states it ("Table 2", "Thm. 3", "Fig. 4").
        metric: what is measured, with its unit ("WikiText-2 perplexity", "Spearman x100").
        paper: the paper's value (a number) or its qualitative claim (a string, e.g. "> RTN").
        ours: our measured value.
        holds: the verdict: True / False, or None when there is nothing to compare (then ``note`` must
            say why).
        note: setting, deviation or caveat (model, data, scale, seeds); the reason when ``holds`` is None.
    """

    paper_ref: str
    metric: str
    paper: Any
    ours: Any
    holds: bool | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.holds is not None and not isinstance(self.holds, bool):
            self.holds = bool(self.holds)  # numpy / torch booleans
        if self.holds is None and not self.note.strip():
            raise ValueError(f"Claim({self.paper_ref!r}, {self.metric!r}): holds=None needs a note saying why "
                             "there is no verdict")

    @property
    def verdict(self) -> str:
        """``"yes"``, ``"no"`` or ``"n/a"``."""
        return {True: "yes", False: "no", None: "n/a"}[self.holds]

    def to_dict(self) -> dict[str, Any]:
        return {k: jsonable(v) for k, v in asdict(self).items()}


@dataclass
class Reproduction:
    """A named reproduction: ``fn(quick, out_dir[, seed]) -> list[Claim]``."""

    name: str
    description: str
    fn: Callable[..., Sequence[Claim]]
    package: str = field(default="")

    def __call__(self, quick: bool = True, out: Path | str = "reproductions", seed: int = 0) -> list[Claim]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        seed_everything(seed)
        kwargs = {"seed": seed} if "seed" in inspect.signature(self.fn).parameters else {}
        claims = list(self.fn(quick, out, **kwargs))
        for c in claims:
            if not isinstance(c, Claim):
                raise TypeError(f"reproduction {self.name!r} must return Claims, got {type(c).__name__}")
        return claims


def reproduction(name: str, description: str = "") -> Callable[[Callable], Reproduction]:
    """Decorator turning ``fn(quick: bool, out: Path[, seed: int]) -> list[Claim]`` into a :class:`Reproduction`."""

    def wrap(fn: Callable) -> Reproduction:
        return Reproduction(name=name, description=description or (fn.__doc__ or "").strip().split("\n")[0], fn=fn)

    return wrap


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - reproductions using the legacy global generator
    torch.manual_seed(seed)


def discover(packages: Sequence[str] | None = None) -> dict[str, list[Reproduction]]:
    """Installed packages' reproductions, by package name (sorted); only ``packages`` when given.

    A package whose entry point fails to import gets one reproduction, ``import``, that raises the import
    error, so that it shows as an error row and the other packages still run.
    """
    found: dict[str, list[Reproduction]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if packages and ep.name not in packages:
            continue
        try:
            repros = list(ep.load())
        except Exception as e:  # noqa: BLE001 - a broken package must not hide the others
            message = f"{ep.name}: its reproductions failed to import ({type(e).__name__}: {e})"

            def broken(quick: bool, out: Path, message: str = message) -> list[Claim]:
                raise RuntimeError(message)

            repros = [Reproduction("import", "the package's reproductions import", broken)]
        for r in repros:
            r.package = ep.name
        found[ep.name] = repros
    return dict(sorted(found.items()))


def installed() -> list[str]:
    """Names of the packages that register reproductions (without importing them)."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def run(
    packages: Sequence[str] | None = None, *, quick: bool = True, out: Path | str = "reproductions",
    only: Sequence[str] | None = None, seed: int = 0,
) -> list[dict[str, Any]]:
    """Run reproductions and write one JSON record each plus ``SUMMARY.md`` under ``out``.

    An error in one reproduction is recorded in its row and the others still run.

    Args:
        packages: package names to run (default: all installed).
        quick: the small CPU setting (minutes) instead of the full one.
        out: output folder.
        only: optional reproduction names to restrict to.
        seed: base random seed, passed to every reproduction.

    Returns:
        The list of written records (dicts).
    """
    from tqdm.auto import tqdm

    registry = discover(packages)
    if not registry and not packages:
        raise SystemExit("no papercommon package with reproductions is installed (entry-point group "
                         f"{ENTRY_POINT_GROUP!r}); install one, e.g. `pip install ./shared ./packages/zipf_whitening`")
    packages = list(packages or registry)
    unknown = [p for p in packages if p not in registry]
    if unknown:
        raise SystemExit(f"unknown package(s) {unknown}; known: {installed()}")
    jobs = [r for p in packages for r in registry[p] if not only or r.name in only]
    if only and not jobs:
        known = sorted(r.name for p in packages for r in registry[p])
        raise SystemExit(f"--only {list(only)} matches no reproduction of {packages}; known: {known}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for r in (bar := tqdm(jobs, desc="reproduce", unit="repro")):
        bar.set_postfix_str(f"{r.package}/{r.name}")
        t0 = time.perf_counter()
        try:
            claims, error = r(quick=quick, out=out / r.package, seed=seed), None
        except Exception as e:  # noqa: BLE001 - one failing reproduction must not hide the others
            claims, error = [], f"{type(e).__name__}: {e}"
        rec = Record(
            name=f"{r.package}/{r.name}",
            config={"package": r.package, "reproduction": r.name, "quick": quick, "seed": seed},
            metrics={"claims": [c.to_dict() for c in claims], "seconds": time.perf_counter() - t0,
                     "error": error},
        )
        rec.save(out / r.package / f"{r.name}.json")
        records.append(rec.to_dict())
    (out / "SUMMARY.md").write_text(summary_markdown(records))
    return records


def summary_markdown(records: Sequence[dict[str, Any]]) -> str:
    """Reproduction records as markdown: one timing row per reproduction (and the total), then one
    verdict row per claim (yes / no / n/a with the reason / error)."""
    total = sum(float(r["metrics"].get("seconds", 0.0)) for r in records)
    timing = [[r["config"]["package"], r["config"]["reproduction"], float(r["metrics"].get("seconds", 0.0)),
               len(r["metrics"]["claims"]), "error" if r["metrics"].get("error") else "ok"] for r in records]
    timing.append(["**total**", "", total, sum(t[3] for t in timing), ""])
    rows = []
    for rec in records:
        m, c = rec["metrics"], rec["config"]
        if m.get("error"):
            rows.append([c["package"], c["reproduction"], "-", "-", "-", m["error"], "error", ""])
        for cl in m["claims"]:
            verdict = {True: "yes", False: "no", None: "n/a"}[cl["holds"]]
            rows.append([c["package"], c["reproduction"], cl["paper_ref"], cl["metric"], cl["paper"], cl["ours"],
                         verdict, cl.get("note", "")])
    mode = "quick" if all(r["config"].get("quick", True) for r in records) else "full"
    return (f"# Reproductions ({mode})\n\n## Wall time\n\n"
            + markdown_table(["package", "reproduction", "seconds", "claims", "status"], timing, digits=4)
            + "\n## Claims\n\n"
            + markdown_table(["package", "reproduction", "claim", "metric", "paper", "ours", "verdict", "note"], rows))


def main(argv: Sequence[str] | None = None) -> int:
    from papercommon.cli import add_run_args

    parser = argparse.ArgumentParser(prog="papercommon", description="Reproduce the papers of the paperkit packages.")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    lp = sub.add_parser("list", help="list installed reproductions")
    lp.add_argument("packages", nargs="*", help="package names (default: all)")
    rp = sub.add_parser("reproduce", help="run reproductions, write JSON records and SUMMARY.md")
    rp.add_argument("packages", nargs="*", help="package names (default: all)")
    add_run_args(rp)
    args = parser.parse_args(argv)
    unknown = [p for p in args.packages if p not in installed()]
    if unknown:
        parser.error(f"unknown package(s) {unknown}; known: {installed()}")
    if args.cmd == "list":
        registry = discover(args.packages or None)
        if not registry:
            print(f"no package registers reproductions under {ENTRY_POINT_GROUP!r}", file=sys.stderr)
            return 1
        for pkg, repros in registry.items():
            if args.packages and pkg not in args.packages:
                continue
            for r in repros:
                print(f"{pkg:20s} {r.name:28s} {r.description}")
        return 0
    try:
        records = run(args.packages, quick=args.quick, out=args.out, only=args.only, seed=args.seed)
    except SystemExit as e:
        if isinstance(e.code, str):
            parser.error(e.code)
        raise
    print((Path(args.out) / "SUMMARY.md").read_text())
    failed = [r["name"] for r in records if r["metrics"]["error"]]
    if failed:
        print(f"{len(failed)} reproduction(s) raised: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
