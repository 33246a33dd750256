"""Timing, peak memory and result records.

* :func:`benchmark` runs a function after warm-up and reports the median (CUDA events on a GPU,
  ``perf_counter`` on the CPU);
* :func:`peak_memory` reports the peak bytes a call allocates (CUDA allocator on a GPU, ``tracemalloc``
  plus RSS growth on the CPU);
* :class:`Record` is a JSON file with the config, the metrics, the git commit (and whether the tree was
  dirty) and the environment; :func:`render_table` turns records into markdown.

Example:
    >>> import torch
    >>> from paperkit.bench import benchmark, Record
    >>> t = benchmark(lambda: torch.randn(256, 256) @ torch.randn(256, 256), warmup=2, rep=5)
    >>> rec = Record("matmul-256", config={"n": 256}, metrics={"ms": t.median_ms})
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import platform
import resource
import statistics
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock timings in milliseconds."""

    times_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def iqr_ms(self) -> float:
        if len(self.times_ms) < 4:
            return 0.0
        q = statistics.quantiles(self.times_ms, n=4)
        return q[2] - q[0]

    def to_dict(self) -> dict[str, float]:
        return {"median_ms": self.median_ms, "min_ms": self.min_ms, "iqr_ms": self.iqr_ms, "rep": len(self.times_ms)}


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(fn: Callable[[], Any], *, warmup: int = 3, rep: int = 10, device: torch.device | str | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``rep`` timed ones.

    Args:
        fn: a zero-argument callable.
        warmup: untimed calls first (compilation, autotuning, caches).
        rep: timed calls.
        device: a CUDA device makes the timing use CUDA events; otherwise ``perf_counter``.
    """
    if warmup < 0 or rep < 1:
        raise ValueError(f"need warmup >= 0 and rep >= 1, got warmup={warmup}, rep={rep}")
    cuda = device is not None and torch.device(device).type == "cuda"
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(rep):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return Timing(tuple(times))


def peak_memory(fn: Callable[[], Any], *, device: torch.device | str | None = None) -> int:
    """Peak bytes allocated while ``fn()`` runs, above what was allocated before.

    On a CUDA device this is the caching allocator's peak. On the CPU it is the larger of the
    ``tracemalloc`` peak (Python and numpy allocations) and the growth of the process's peak RSS
    (torch's CPU allocations; only visible when they exceed the earlier peak).
    """
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(peak, rss1 - rss0)


@functools.cache
def git_state(path: str | None = None) -> dict[str, Any]:
    """The current git commit and whether the tree is dirty (``None`` outside a repository)."""
    cwd = path or str(Path(__file__).resolve().parent)
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


@dataclass
class Record:
    """A result record: what ran (config), what came out (metrics), where (git, environment).

    Args:
        name: a stable identifier ("fastattention/fwd-causal-4k").
        config: everything needed to rerun (a config's ``to_dict()``, shapes, seeds, command).
        metrics: the measured values.
    """

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=git_state)
    env: dict[str, Any] = field(default_factory=environment)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        from paperkit.reproduce import _jsonable

        return _jsonable({"name": self.name, "config": self.config, "metrics": self.metrics, "git": self.git,
                          "env": self.env, "created": self.created})

    def save(self, path: str | Path) -> Path:
        """Write the record as indented JSON (creating folders)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Record:
        d = json.loads(Path(path).read_text())
        return cls(**d)


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

    def fmt(v: Any) -> str:
        return f"{v:.{digits}g}" if isinstance(v, float) else str(v)

    head = [c.split(".")[-1] for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(get(r, c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
