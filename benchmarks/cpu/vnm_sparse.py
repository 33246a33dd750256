"""vnm_sparse: the CPU V:N:M matmul against dense ``F.linear`` (issue 17).

64:2:8 weight of 4096 x 4096 (75% sparse), T = 2048 tokens, fp32. ``vnm_matmul(..., backend="torch")`` runs
``vnm_matmul_blocked``: per 64-row block, gather the block's 4G = 2048 kept input columns into one reused
[4G, T] buffer, then one GEMM [64, 4G] x [4G, T] written into rows of the [R, T] result (M/4 = 2x fewer
FLOPs than dense). The old path materialised a [T, RB, 4G] copy of x (1.6 GB here). The baseline is
``F.linear`` with the same weight decompressed to dense. Memory: the growth of the process's resident set,
sampled every 0.2 ms by a thread while one call runs (large torch CPU buffers are fresh mmaps, so they
show up there), beside the output's own size.

    uv run python benchmarks/run.py cpu --only vnm_sparse
"""

from __future__ import annotations

import os
import threading
import time

import torch
from papercommon.bench import Record, interleaved, ratio_record
from vnm_sparse import pack_vnm, unpack_vnm, vnm_mask, vnm_matmul

TARGET = 1.2  # at most 1.2x dense F.linear's time


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(fn) -> int:
    """Peak resident-set growth (bytes) while ``fn()`` runs, sampled by a thread every 0.2 ms."""
    base, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss() - base)
            time.sleep(2e-4)

    th = threading.Thread(target=sample)
    th.start()
    out = fn()
    peak[0] = max(peak[0], _rss() - base)
    done.set()
    th.join()
    del out
    return peak[0]


def records(quick: bool) -> list[Record]:
    r = c = 4096
    t = 2048  # the setting, quick or not
    v, m = 64, 8
    torch.manual_seed(0)
    w = torch.randn(r, c)
    packed = pack_vnm(w, vnm_mask(w, v, 2, m), v, m)
    dense = unpack_vnm(packed)
    x = torch.randn(t, c)
    fns = {"vnm_blocked": lambda: vnm_matmul(x, packed, backend="torch"),
           "dense_linear": lambda: torch.nn.functional.linear(x, dense)}
    fns["dense_linear"]()  # warm up once before sampling memory
    fns["vnm_blocked"]()
    mem = {k: rss_growth(f) for k, f in fns.items()}
    timings = interleaved(fns, rep=7, warmup=2)
    out_bytes = t * r * 4
    rec = ratio_record("vnm_sparse/matmul_64_2_8", timings, "vnm_blocked", "dense_linear", target=TARGET,
                       config={"shape": [r, c], "tokens": t, "pattern": f"{v}:2:{m}", "dtype": "float32",
                               "threads": torch.get_num_threads()},
                       note="one GEMM [64, 4G] x [4G, T] per row block after a row gather; RSS growth sampled per call")
    rec.metrics.update({"rss_growth_bytes_vnm": mem["vnm_blocked"], "rss_growth_bytes_dense": mem["dense_linear"],
                        "output_bytes": out_bytes, "load_avg_1min": os.getloadavg()[0]})
    return [rec]
