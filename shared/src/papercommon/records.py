"""Result records: one way to write them, one way to read them back, one markdown renderer.

A :class:`Record` is a JSON file with the config, the metrics, the command that made it, the git commit
(and whether the tree was dirty) and the environment. Every package writes its results with
:func:`write_record` (file name ``<folder>/<name>.json``) and reads them with :func:`read_records`, which
raises :class:`RecordError` naming the path when a record is missing or corrupt, so that ``tables`` and
report commands can exit non-zero instead of printing an empty table.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = write_record(folder, "demo", config={"n": 3}, metrics={"acc": 0.9})
    >>> read_records(folder)[0]["metrics"]["acc"]
    0.9
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class RecordError(RuntimeError):
    """A record is missing, unreadable or not a record (the message names the path)."""


def jsonable(v: Any) -> Any:
    """``v`` with everything JSON cannot hold made plain: 0-d tensors/arrays to numbers, non-finite floats
    to strings ("nan", "inf"), tuples to lists, other objects to ``str``."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if hasattr(v, "to_dict") and callable(v.to_dict) and not isinstance(v, type):
        return jsonable(v.to_dict())
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 0) == 0:
        return jsonable(v.item())
    if hasattr(v, "tolist") and callable(v.tolist):
        return jsonable(v.tolist())
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return str(v)


@functools.cache
def git_state(path: str | None = None) -> dict[str, Any]:
    """The current git commit and whether the tree is dirty (``None`` outside a repository)."""
    cwd = path or str(Path.cwd())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, check=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def environment() -> dict[str, Any]:
    """Python, torch, triton and hardware names."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path``, creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path


def read_json(path: str | Path, what: str = "a JSON file") -> dict[str, Any]:
    """The JSON object at ``path``: ``FileNotFoundError`` / ``ValueError`` naming the path and ``what`` was
    expected when it is missing, not valid JSON, or not an object."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: expected {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}), expected {what}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected {what} holding a JSON object, got {type(d).__name__}")
    return d


def _command() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else ""


@dataclass
class Record:
    """A result record: what ran (config, command), what came out (metrics), where (git, environment).

    Args:
        name: a stable identifier ("fastattention/fwd-causal-4k"); also the file name under a folder.
        config: everything needed to rerun (a config's ``to_dict()``, shapes, seeds).
        metrics: the measured values.
        command: the command line that produced it (default: this process's).
    """

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    command: str = field(default_factory=_command)
    git: dict[str, Any] = field(default_factory=git_state)
    env: dict[str, Any] = field(default_factory=environment)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"name": self.name, "config": self.config, "metrics": self.metrics,
                         "command": self.command, "git": self.git, "env": self.env, "created": self.created})

    def save(self, path: str | Path) -> Path:
        """Write the record as indented JSON (creating folders)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Record:
        d = read_record(path)
        return cls(**{k: d[k] for k in ("name", "config", "metrics", "git", "env", "created", "command") if k in d})


def write_record(folder: str | Path, name: str, *, config: Any = None, metrics: dict[str, Any] | None = None,
                 command: str | None = None) -> Path:
    """Write ``<folder>/<name>.json`` with the config, metrics, command, git commit and environment.

    ``name`` may contain ``/`` (sub-folders); ``config`` may be a :class:`papercommon.config.Config`.
    Returns the path written.
    """
    if not name or name.startswith("/") or ".." in Path(name).parts:
        raise ValueError(f"name: expected a relative record name without '..', got {name!r}")
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    rec = Record(name=name, config=cfg, metrics=dict(metrics or {}))
    if command is not None:
        rec.command = command
    return rec.save(Path(folder) / f"{name}.json")


def read_record(path: str | Path) -> dict[str, Any]:
    """One record as a dict; :class:`RecordError` naming the path if missing, corrupt or not a record."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"no record at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"record {path} is unreadable: {e}") from None
    if not isinstance(d, dict) or not {"name", "metrics"} <= set(d):
        raise RecordError(f"record {path} is not a record: expected a JSON object with 'name' and 'metrics'")
    return d


def read_records(folder: str | Path, pattern: str = "*.json") -> list[dict[str, Any]]:
    """Every record under ``folder`` matching ``pattern`` (recursive glob), sorted by path.

    Raises :class:`RecordError` when the folder is missing, holds no record, or a record is corrupt.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(f"no records folder at {folder}")
    paths = sorted(p for p in folder.rglob(pattern) if p.is_file())
    if not paths:
        raise RecordError(f"no records matching {pattern!r} under {folder}")
    return [read_record(p) for p in paths]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """A markdown table; floats are written with ``digits`` significant digits."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return "" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_table(records: Sequence[Record | dict[str, Any]], columns: Sequence[str] | None = None,
                 digits: int = 4) -> str:
    """Render records as a markdown table.

    Columns are dotted paths into the record (``"name"``, ``"config.seq"``, ``"metrics.median_ms"``);
    by default ``name`` and every metric key of the first record.
    """
    rows = [r.to_dict() if isinstance(r, Record) else r for r in records]
    if not rows:
        return ""
    if columns is None:
        columns = ["name"] + [f"metrics.{k}" for k in rows[0]["metrics"]]

    def get(row: dict[str, Any], path: str) -> Any:
        for part in path.split("."):
            row = row.get(part, "") if isinstance(row, dict) else ""
        return row

    return markdown_table([c.split(".")[-1] for c in columns], [[get(r, c) for c in columns] for r in rows], digits)
