"""Markdown tables rendered from the committed JSON records (used for the README).

    python -m polyak_clip tables packages/polyak_clip/results/quick/polyak_clip
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def _load(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"expected a record at {path}; run `papercommon reproduce polyak_clip --out ...` first")
    return json.loads(path.read_text())


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return "never" if v in ("inf", "Infinity") else v
    if isinstance(v, float) and math.isinf(v):
        return "never"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def synthetic_table(folder: Path) -> str:
    """Iterations to reach the gap tolerance and final gap, per method and L1 (Fig. 1)."""
    rec = _load(Path(folder) / "synthetic_record.json")
    by = rec["metrics"]["by_L1"]
    L1s = list(by)
    tol = rec["config"]["tol"]
    head = "| method | " + " | ".join(f"L1={float(v):g}: its to {tol:g} / final gap" for v in L1s) + " |"
    lines = [head, "|---|" + "---|" * len(L1s)]
    for m in by[L1s[0]]:
        cells = [f"{_num(by[v][m]['iterations_to_tol'])} / {by[v][m]['final_gap']:.1e}" for v in L1s]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def neural_table(folder: Path) -> str:
    """Final validation loss (mean ± std over seeds) and diverged runs, per task and method (Sec. 6.2)."""
    rec = _load(Path(folder) / "neural_record.json")
    tasks = list(rec["metrics"])
    methods = [m for m in rec["metrics"][tasks[0]] if m != "grid"]
    lines = ["| method | " + " | ".join(f"{t}: val loss (diverged/seeds)" for t in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for m in methods:
        cells = []
        for t in tasks:
            s = rec["metrics"][t][m]
            cells.append(f"{float(s['val_loss_mean']):.3f} ± {float(s['val_loss_std']):.3f} ({s['diverged']}/{s['seeds']})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def claims_table(folder: Path) -> str:
    """Paper | Ours | holds | record, from the papercommon reproduction records in ``folder``."""
    lines = ["| reproduction | claim | paper | ours | holds | record |", "|---|---|---|---|---|---|"]
    for name in ("synthetic", "neural"):
        path = Path(folder) / f"{name}.json"
        if not path.is_file():
            continue
        for c in _load(path)["metrics"]["claims"]:
            holds = {True: "yes", False: "**no**", None: "-"}[c["holds"]]
            lines.append(f"| {name} | {c['metric']} | {_num(c['paper'])} | {_num(c['ours'])} | {holds} | "
                         f"`{path.name}` |")
    return "\n".join(lines) + "\n"


def all_tables(folder: Path) -> str:
    folder = Path(folder)
    parts = [claims_table(folder)]
    for title, fn in (("Synthetic (Fig. 1)", synthetic_table), ("Neural (Sec. 6.2)", neural_table)):
        try:
            parts.append(f"### {title}\n\n" + fn(folder))
        except FileNotFoundError:
            pass
    return "\n".join(parts)
