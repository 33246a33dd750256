"""vnm_sparse: the CPU V:N:M matmul against dense ``F.linear`` (issue 17).

64:2:8 weight of 4096 x 4096 (75% sparse), T = 2048 tokens, fp32. ``vnm_matmul(..., backend="torch")`` runs
``vnm_matmul_blocked``: per 64-row block, gather the block's 4G = 2048 kept input columns into one reused
[4G, T] buffer, then one GEMM [64, 4G] x [4G, T] written into rows of the [R, T] result (M/4 = 2x fewer
FLOPs than dense). The old path materialised a [T, RB, 4G] copy of x (1.6 GB here). The baseline is
``F.linear`` with the same weight decompressed to dense. Peak memory is measured per call beside the
output's size.

    uv run python benchmarks/run.py cpu --only vnm_sparse
"""

from __future__ import annotations

import torch
from papercommon.bench import Record, interleaved, peak_memory, ratio_record
from vnm_sparse import pack_vnm, unpack_vnm, vnm_mask, vnm_matmul

TARGET = 1.2  # at most 1.2x dense F.linear's time


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
    mem = {k: peak_memory(f) for k, f in fns.items()}
    timings = interleaved(fns, rep=7, warmup=2)
    out_bytes = t * r * 4
    rec = ratio_record("vnm_sparse/matmul_64_2_8", timings, "vnm_blocked", "dense_linear", target=TARGET,
                       config={"shape": [r, c], "tokens": t, "pattern": f"{v}:2:{m}", "dtype": "float32",
                               "threads": torch.get_num_threads()},
                       note="gather buffer [4G, T] is 4/M of x; peak bytes measured per call")
    rec.metrics.update({"peak_bytes_vnm": mem["vnm_blocked"], "peak_bytes_dense": mem["dense_linear"],
                        "output_bytes": out_bytes})
    return [rec]
