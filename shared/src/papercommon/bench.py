"""Timing, peak memory and result records.

* :func:`benchmark` runs a function after warm-up and reports the median (CUDA events on a GPU,
  ``perf_counter`` on the CPU);
* :func:`peak_memory` reports the peak bytes a call allocates (CUDA allocator on a GPU, ``tracemalloc``
  plus RSS growth on the CPU);
* :func:`interleaved` times several candidates round-robin in one process (the fair way to compare a
  fast path with its baseline on a shared machine) and :func:`ratio` divides their medians.

Records live in :mod:`papercommon.records` (``Record``, ``write_record``, ``render_table`` are re-exported
here).

Example:
    >>> import torch
    >>> from papercommon.bench import benchmark, interleaved, ratio
    >>> t = benchmark(lambda: torch.randn(256, 256) @ torch.randn(256, 256), warmup=2, rep=5)
    >>> a, b = torch.randn(128, 128), torch.randn(128, 128)
    >>> ts = interleaved({"mm": lambda: a @ b, "matmul": lambda: torch.matmul(a, b)}, rep=7)
    >>> r = ratio(ts, "mm", "matmul")
"""

from __future__ import annotations

import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from papercommon.records import Record, environment, git_state, render_table, write_record

__all__ = ["Timing", "benchmark", "interleaved", "ratio", "ratio_record", "peak_memory", "Record", "write_record",
           "render_table", "environment", "git_state"]


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


def _time_once(fn: Callable[[], Any], cuda: bool, device: torch.device | str | None) -> float:
    """Milliseconds of one call: CUDA events on a GPU, ``perf_counter`` on the CPU."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


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
        times.append(_time_once(fn, cuda, device))
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


def interleaved(fns: Mapping[str, Callable[[], Any]], *, rep: int = 7, warmup: int = 2,
                device: torch.device | str | None = None) -> dict[str, Timing]:
    """Time several zero-argument callables round-robin: each round calls every one once, in order.

    Interleaving spreads machine load (other processes, turbo, thermal) evenly over the candidates, so
    the ratio of their medians is fair even on a busy machine. Use ``rep >= 7``.

    Returns:
        name -> :class:`Timing` with ``rep`` samples each.
    """
    if warmup < 0 or rep < 1:
        raise ValueError(f"need warmup >= 0 and rep >= 1, got warmup={warmup}, rep={rep}")
    if not fns:
        raise ValueError("fns: expected at least one callable")
    cuda = device is not None and torch.device(device).type == "cuda"
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rep):
        for name, fn in fns.items():
            times[name].append(_time_once(fn, cuda, device))
    return {name: Timing(tuple(t)) for name, t in times.items()}


def ratio(timings: Mapping[str, Timing], candidate: str, baseline: str) -> float:
    """``median(candidate) / median(baseline)``: below 1 means the candidate is faster."""
    return timings[candidate].median_ms / timings[baseline].median_ms



def ratio_record(name: str, timings: Mapping[str, Timing], candidate: str, baseline: str, *, target: float,
                 config: Mapping[str, Any] | None = None, note: str = "") -> Record:
    """A performance record: ``ratio = median(candidate) / median(baseline)`` and whether it meets ``target``.

    ``target`` is the largest acceptable time ratio: "at most 1.2x the baseline's time" is ``1.2``;
    "at least 1.5x faster" is ``1 / 1.5``. The record also keeps both medians, the run count and ``note``
    (what limits a missed target).
    """
    r = ratio(timings, candidate, baseline)
    return Record(name=name, config={"candidate": candidate, "baseline": baseline, **dict(config or {})},
                  metrics={"candidate_ms": timings[candidate].median_ms, "baseline_ms": timings[baseline].median_ms,
                           "ratio": r, "target": target, "met": r <= target, "rep": len(timings[candidate].times_ms),
                           "note": note})
