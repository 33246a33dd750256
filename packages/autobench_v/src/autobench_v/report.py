"""Markdown tables and PNG plots of a finished run (``autobench-v report DIR``)."""

from __future__ import annotations

import json
from pathlib import Path


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
    lines += ["", "| model | acc original | acc rebalanced | dev all-A | dev all-D | failures |", "|---|---|---|---|---|---|"]
    for m, b in scores["position_bias"].items():
        lines.append(f"| {m} | {_fmt(b['acc_original'])} | {_fmt(b['acc_uniform'])} | {b['dev_A']:+.2f} | "
                     f"{b['dev_D']:+.2f} | {scores['failures'][m]} |")
    v = scores.get("validation")
    if v:
        lines += ["", f"Self-validation: {v['passed']} of {v['descriptions']} descriptions passed; corrupted images "
                      f"rejected at first attempt: {_fmt(v['corrupted_rejected'])}%, clean images rejected: "
                      f"{_fmt(v['clean_rejected'])}%."]
    return "\n".join(lines) + "\n"


def plot(scores: dict, path: str | Path) -> None:
    """Accuracy by difficulty, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for m, t in scores["accuracy"].items():
        levels = [lv for lv in t["all"] if lv != "overall"]
        ax.plot(levels, [t["all"][lv] for lv in levels], marker="o", label=m)
    ax.axhline(0.25, ls=":", c="gray", label="chance")
    ax.set_ylabel("accuracy (rebalanced)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(out_dir: str | Path) -> str:
    """Write ``REPORT.md`` and ``accuracy_by_level.png`` for a run folder; return the markdown."""
    out = Path(out_dir)
    path = out / "scores.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `autobench-v run --out {out}` first")
    scores = json.loads(path.read_text())
    md = markdown(scores)
    (out / "REPORT.md").write_text(md)
    plot(scores, out / "accuracy_by_level.png")
    return md
