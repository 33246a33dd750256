"""Markdown tables and PNG plots of a finished run (``autobench-v report DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

from papercommon.figures import figure
from papercommon.records import RecordError


def _fmt(x) -> str:
    return "-" if x != x else f"{100 * x:.1f}"  # NaN -> "-"


def markdown(scores: dict) -> str:
    """Accuracy (%) per model x capability x level, then position bias and self-validation."""
    caps = [c for c in next(iter(scores["accuracy"].values())) if c != "all"]
    levels = [lv for lv in next(iter(scores["accuracy"].values()))["all"] if lv != "overall"]
    head = ["model"] + [f"{c.split('_')[0]} {lv}" for c in caps for lv in levels] + [f"all {lv}" for lv in levels] + ["overall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, t in scores["accuracy"].items():
        row = [_fmt(t[c][lv]) for c in caps for lv in levels] + [_fmt(t["all"][lv]) for lv in levels + ["overall"]]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", "| model | items | acc rebalanced [95% CI] | acc original | dev all-A | dev all-D | shuffled image [95% CI] "
                  "| failures |", "|---|---|---|---|---|---|---|---|"]
    for m, b in scores["position_bias"].items():
        lo, hi = scores.get("ci", {}).get(m, {}).get("all", {}).get("overall", [float("nan")] * 2)
        sh = scores.get("shuffle_control", {}).get(m, {"accuracy": float("nan"), "ci": [float("nan")] * 2})
        lines.append(f"| {m} | {scores.get('n', {}).get(m, {}).get('all', {}).get('overall', '-')} | "
                     f"{_fmt(b['acc_uniform'])} [{_fmt(lo)}, {_fmt(hi)}] | {_fmt(b['acc_original'])} | "
                     f"{b['dev_A']:+.2f} | {b['dev_D']:+.2f} | {_fmt(sh['accuracy'])} [{_fmt(sh['ci'][0])}, "
                     f"{_fmt(sh['ci'][1])}] | {scores['failures'][m]} |")
    v = scores.get("validation")
    if v:
        lines += ["", f"Self-validation: {v['passed']} of {v['descriptions']} descriptions passed; corrupted images "
                      f"rejected at first attempt: {_fmt(v['corrupted_rejected'])}%, clean images rejected: "
                      f"{_fmt(v['clean_rejected'])}%."]
    return "\n".join(lines) + "\n"


def plot(scores: dict, path: str | Path) -> None:
    """Accuracy by difficulty, one line per model."""
    with figure(path, figsize=(5.5, 3.5)) as ax:
        for m, t in scores["accuracy"].items():
            levels = [lv for lv in t["all"] if lv != "overall"]
            ax.plot(levels, [t["all"][lv] for lv in levels], marker="o", label=m)
        ax.axhline(0.25, ls=":", c="gray", label="chance")
        ax.set_ylabel("accuracy (rebalanced)")
        ax.set_ylim(0, 1)


def report(out_dir: str | Path) -> str:
    """Write ``REPORT.md`` and ``accuracy_by_level.png`` for a run folder; return the markdown."""
    out = Path(out_dir)
    path = out / "scores.json"
    if not path.exists():
        raise RecordError(f"no scores at {path}: run `autobench-v run --out {out}` first")
    try:
        scores = json.loads(path.read_text())
        md = markdown(scores)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, StopIteration) as e:
        raise RecordError(f"scores {path} are unreadable: {type(e).__name__}: {e}") from None
    (out / "REPORT.md").write_text(md)
    plot(scores, out / "accuracy_by_level.png")
    return md
