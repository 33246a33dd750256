"""Benchmarks: V:N:M matmul against dense (and PyTorch 2:4 where available), speedup tables for
:func:`vnm_sparse.functional.select_vm`, and compressed bytes per pattern."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from papercommon.bench import benchmark

from vnm_sparse.functional import pack_vnm, vnm_mask
from vnm_sparse.kernels import vnm_matmul


def random_packed(shape: tuple[int, int], v: int, m: int, dtype: torch.dtype, device: str, seed: int = 0):
    """A random weight, its V:N:M mask and packed form (magnitude mask)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randn(*shape, generator=g).to(device=device, dtype=dtype)
    mask = vnm_mask(w.float(), v, 2, m, pad=True)
    return w, mask, pack_vnm(w, mask, v, m)


def time_pair(shape: tuple[int, int], v: int, m: int, tokens: int, dtype: torch.dtype, device: str,
              backend: str = "auto", warmup: int = 5, rep: int = 20) -> dict:
    """Median ms of the V:N:M matmul and of the dense F.linear on the same shape."""
    w, mask, packed = random_packed(shape, v, m, dtype, device)
    x = torch.randn(tokens, shape[1], device=device, dtype=dtype)
    dense_w = (w * mask).to(dtype)
    t_sp = benchmark(lambda: vnm_matmul(x, packed, backend=backend), warmup=warmup, rep=rep, device=device).median_ms
    t_d = benchmark(lambda: torch.nn.functional.linear(x, dense_w), warmup=warmup, rep=rep, device=device).median_ms
    return {"ms": t_sp, "dense_ms": t_d, "speedup": t_d / t_sp}


def profile_speedups(shapes: Iterable[tuple[int, int]], vs: Iterable[int], ms: Iterable[int], tokens: int = 2048,
                     dtype: torch.dtype = torch.float16, device: str = "cuda", backend: str = "auto"
                     ) -> dict[tuple[int, int], float]:
    """Speedup over dense of every (v, m), the geometric mean over the model's linear shapes (Sec. 3.1,
    sieve 1 input). Feed the result to :func:`vnm_sparse.functional.select_vm`."""
    shapes, vs, ms = list(shapes), list(vs), list(ms)
    out = {}
    for v in vs:
        for m in ms:
            prod = 1.0
            for shape in shapes:
                prod *= time_pair(shape, v, m, tokens, dtype, device, backend)["speedup"]
            out[(v, m)] = prod ** (1 / len(shapes))
    return out
