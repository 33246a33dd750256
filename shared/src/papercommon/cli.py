"""One command-line contract for every package.

``papercommon reproduce <pkg> [--quick|--full] [--only NAME ...] [--out DIR] [--seed N]`` runs any
package's reproductions; ``python -m <pkg>`` gives the same ``reproduce`` and ``list`` commands for one
package plus its own (train, bench, tables), built with :func:`package_main` so that flags are spelled
the same everywhere. Bad values are usage errors (exit code 2 with a message), never tracebacks; a
command that reads records exits 1 with a message when they are missing or corrupt.

Example (a package's ``__main__.py``):

    from papercommon.cli import Command, package_main

    def tables(args):
        ...                                  # read records with papercommon.records.read_records

    def main(argv=None):
        return package_main("zipf_whitening", [Command("tables", "render the README tables", tables)], argv)
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from papercommon.records import RecordError


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}")
        return v

    return parse


positive_int = _int_at_least(1)
"""argparse type: an int >= 1."""
nonnegative_int = _int_at_least(0)
"""argparse type: an int >= 0 (seeds, counts that may be zero)."""


def finite_float(text: str) -> float:
    """argparse type: a finite float."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0 (learning rates, thresholds)."""
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def add_run_args(parser: argparse.ArgumentParser, *, out_default: str = "reproductions") -> None:
    """The shared flags: ``--quick`` (default) / ``--full``, ``--only NAME ...``, ``--out DIR``, ``--seed N``."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True,
                   help="the small CPU setting (default)")
    g.add_argument("--full", dest="quick", action="store_false", help="the paper-like setting")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="restrict to these names")
    parser.add_argument("--out", default=out_default, metavar="DIR", help=f"output folder (default: {out_default})")
    parser.add_argument("--seed", type=nonnegative_int, default=0, metavar="N", help="base random seed (default: 0)")


@dataclass
class Command:
    """A package-specific subcommand: ``run(args) -> exit code`` (anything but an int counts as 0).

    ``add_args(parser)`` declares its flags; use :func:`add_run_args` and the argparse types above so that
    the names and checks match every other package.
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    add_args: Callable[[argparse.ArgumentParser], None] = field(default=lambda p: None)


def package_main(package: str, commands: Sequence[Command] = (), argv: Sequence[str] | None = None,
                 description: str | None = None) -> int:
    """``python -m <package>``: ``reproduce`` and ``list`` for this package, plus its own ``commands``.

    ``RecordError`` (missing or corrupt records), ``FileNotFoundError`` and ``ValueError`` raised by a
    command become a one-line message and exit code 1.
    """
    from papercommon import reproduce

    parser = argparse.ArgumentParser(prog=f"python -m {package}",
                                     description=description or f"{package}: reproductions and tools")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    rp = sub.add_parser("reproduce", help=f"run {package}'s reproductions (= papercommon reproduce {package})")
    add_run_args(rp)
    sub.add_parser("list", help=f"list {package}'s reproductions")
    by_name = {}
    for c in commands:
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        c.add_args(p)
        by_name[c.name] = c
    args = parser.parse_args(argv)
    if args.cmd == "reproduce":
        return reproduce.main(["reproduce", package, *_run_argv(args)])
    if args.cmd == "list":
        return reproduce.main(["list", package])
    try:
        rc = by_name[args.cmd].run(args)
        return rc if isinstance(rc, int) and not isinstance(rc, bool) else 0
    except (RecordError, FileNotFoundError, ValueError) as e:
        print(f"{parser.prog} {args.cmd}: error: {e}", file=sys.stderr)
        return 1


def _run_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--quick" if args.quick else "--full", "--out", str(Path(args.out)), "--seed", str(args.seed)]
    if args.only:
        argv += ["--only", *args.only]
    return argv
