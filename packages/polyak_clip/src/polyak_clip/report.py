"""Markdown tables rendered from the committed JSON records (used for the README).

    python -m polyak_clip tables packages/polyak_clip/results/quick/polyak_clip

A missing or corrupt record raises :class:`papercommon.records.RecordError` naming the path (the CLI exits 1).
"""

from __future__ import annotations

import math
from pathlib import Path

from papercommon.records import RecordError, markdown_table, read_record


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


def _metric(rec: dict, key: str, path: Path):
    try:
        return rec["metrics"][key]
    except (KeyError, TypeError):
        raise RecordError(f"record {path} has no metrics.{key}") from None


def synthetic_table(folder: Path) -> str:
    """Iterations to reach the gap tolerance and final gap, per method and L1 (Fig. 1)."""
    path = Path(folder) / "synthetic_runs.json"
    rec = read_record(path)
    by = _metric(rec, "by_L1", path)
    L1s = list(by)
    tol = rec["config"]["tol"]
    rows = [[m] + [f"{_num(by[v][m]['iterations_to_tol'])} / {float(by[v][m]['final_gap']):.1e}" for v in L1s]
            for m in by[L1s[0]]]
    return markdown_table(["method"] + [f"L1={float(v):g}: its to {tol:g} / final gap" for v in L1s], rows)


def neural_table(folder: Path) -> str:
    """Final validation loss (mean ± std over the seeds that did not diverge) and diverged runs (Sec. 6.2)."""
    path = Path(folder) / "neural_runs.json"
    summary = _metric(read_record(path), "summary", path)
    tasks = list(summary)
    methods = list(summary[tasks[0]])
    rows = []
    for m in methods:
        cells = []
        for t in tasks:
            s = summary[t][m]
            cells.append(f"{float(s['val_loss_mean']):.3f} ± {float(s['val_loss_std']):.3f} ({s['diverged']}/{s['seeds']})")
        rows.append([m] + cells)
    return markdown_table(["method"] + [f"{t}: val loss, mean ± std (diverged/seeds)" for t in tasks], rows)


def claims_table(folder: Path) -> str:
    """Claim | paper | ours | holds | note, from the reproduction records in ``folder``."""
    rows = []
    for name in ("synthetic", "neural"):
        path = Path(folder) / f"{name}.json"
        rec = read_record(path)
        for c in _metric(rec, "claims", path):
            holds = {True: "yes", False: "**no**", None: "n/a"}[c["holds"]]
            rows.append([name, c["metric"], _num(c["paper"]), _num(c["ours"]), holds, c.get("note", "")])
    return markdown_table(["reproduction", "claim", "paper", "ours", "holds", "note"], rows)


def all_tables(folder: Path) -> str:
    """Every README table; raises ``RecordError`` when a record is missing or corrupt."""
    folder = Path(folder)
    return "\n".join([claims_table(folder), "### Synthetic (Fig. 1)\n\n" + synthetic_table(folder),
                      "### Neural (Sec. 6.2)\n\n" + neural_table(folder)])
