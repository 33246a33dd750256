"""CPU benchmarks: the torch backend against SDPA and against standard (naive) attention, time and peak
memory. Each memory measurement runs in a fresh subprocess (resident set sampled during the call, above the inputs), so torch's
caching of earlier runs cannot hide an allocation.

CLI:
    uv run python -m fastattention.bench --n 1024 4096 16384 --d 64 128 [--threads 1] [--out results/]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from fastattention.api import attention
from fastattention.masks import TilingMask

_MEM_SCRIPT = r"""
import json, os, sys, threading, time, torch
import torch.nn.functional as F
torch.set_num_threads({threads})
from fastattention import attention
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn({b}, {h}, {n}, {d}, generator=g) for _ in range(3))
mask = None
if {window} and "{impl}" != "torch":
    i = torch.arange({n})
    mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - {window})
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
base, peak, done = rss(), [0], threading.Event()
def sample():  # the high-water mark of the resident set while the call runs
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.0005)
th = threading.Thread(target=sample)
th.start()
if "{impl}" == "torch":
    out = attention(q, k, v, causal={causal}, window={window} or None, backend="torch")
elif "{impl}" == "sdpa":
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal={causal} and mask is None)
else:  # standard attention: scores, softmax, product
    s = (q @ k.transpose(-1, -2)) / {d} ** 0.5
    if {causal} or mask is not None:
        m = mask if mask is not None else torch.ones({n}, {n}, dtype=torch.bool).tril()
        s = s.masked_fill(~m, float("-inf"))
    out = torch.softmax(s, -1) @ v
done.set()
th.join()
peak = max(peak[0], rss())
print(json.dumps({{"extra_bytes": peak - base, "out_bytes": out.numel() * out.element_size()}}))
"""


def peak_extra_memory(impl: str, n: int, d: int = 64, h: int = 1, b: int = 1, causal: bool = True,
                      window: int = 0, threads: int = 1) -> dict[str, int]:
    """Peak RSS growth (bytes, sampled every 0.5 ms) of one attention call in a fresh process: "torch", "sdpa" or "naive"."""
    code = _MEM_SCRIPT.format(impl=impl, n=n, d=d, h=h, b=b, causal=causal, window=window, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if out.returncode:
        raise RuntimeError(f"memory probe failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _time(fn, rep: int) -> float:
    from papercommon.bench import benchmark

    return benchmark(fn, warmup=1, rep=rep).median_ms


def time_vs_sdpa(n: int, d: int, causal: bool, window: int = 0, h: int = 8, b: int = 1, rep: int = 3,
                 naive: bool = False) -> dict[str, float]:
    """Median ms of the torch backend, SDPA (dense bool mask for a window) and, optionally, naive attention.

    Interleaves the calls so that machine-load drift hits both sides alike.
    """
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=g) for _ in range(3))
    mask = TilingMask.sliding_window(window).dense(n, n) if window else None
    ours = lambda: attention(q, k, v, causal=causal, window=window or None, backend="torch")
    sdpa = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)

    def std():
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        if causal or mask is not None:
            s = s.masked_fill(~(mask if mask is not None else torch.ones(n, n, dtype=torch.bool).tril()), -math.inf)
        return torch.softmax(s, -1) @ v

    t_ours, t_sdpa, t_std = [], [], []
    for _ in range(rep):
        t_ours.append(_time(ours, 1))
        t_sdpa.append(_time(sdpa, 1))
        if naive:
            t_std.append(_time(std, 1))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    res = {"ours_ms": med(t_ours), "sdpa_ms": med(t_sdpa)}
    res["ratio_vs_sdpa"] = res["ours_ms"] / res["sdpa_ms"]
    if naive:
        res["naive_ms"] = med(t_std)
        res["speedup_vs_naive"] = res["naive_ms"] / res["ours_ms"]
    return res


def main(argv: list[str] | None = None) -> None:
    from papercommon.bench import Record, render_table

    ap = argparse.ArgumentParser(description="fastattention CPU benchmark: torch backend vs SDPA")
    ap.add_argument("--n", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--d", type=int, nargs="+", default=[64])
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = robust on a shared machine)")
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--rep", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="also probe peak memory (1 head, subprocesses)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    records = []
    for d in a.d:
        for n in a.n:
            for causal, window in ((False, 0), (True, 0), (True, a.window)):
                if window >= n:
                    continue
                m = time_vs_sdpa(n, d, causal, window, h=a.heads, rep=a.rep)
                if a.memory:
                    m["ours_extra_MB"] = peak_extra_memory("torch", n, d, causal=causal, window=window)["extra_bytes"] / 2**20
                    m["sdpa_extra_MB"] = peak_extra_memory("sdpa", n, d, causal=causal, window=window)["extra_bytes"] / 2**20
                rec = Record(f"fastattention/cpu-n{n}-d{d}-{'win' if window else 'causal' if causal else 'full'}",
                             config={"n": n, "d": d, "heads": a.heads, "causal": causal, "window": window,
                                     "threads": a.threads, "dtype": "float32"}, metrics=m)
                records.append(rec)
                print(render_table([rec]), flush=True)
                if a.out:
                    rec.save(a.out / f"{rec.name.split('/')[-1]}.json")
    print(render_table(records, ["name"] + [f"metrics.{k}" for k in records[0].metrics]))


if __name__ == "__main__":
    main()
