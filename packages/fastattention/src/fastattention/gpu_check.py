"""GPU validation and benchmark of the Triton kernels (wired into ``benchmarks/gpu/run.py``).

On CUDA only: checks the forward (O and LSE) and backward (dQ, dK, dV) kernels against torch references
at several shapes (GQA, bottom-right causal with Lq != Lk, sliding window, rows with no key, odd head
dims), with outputs poisoned (NaN) so unwritten elements fail; then times forward and backward in bf16
against SDPA's flash and cuDNN backends (median after warm-up, CUDA events) and reports TFLOP/s.
Importable without a GPU.
"""

from __future__ import annotations

import math

import torch

from fastattention.config import TilingConfig

TOL = {torch.float32: 2e-3, torch.float16: 4e-3, torch.bfloat16: 3e-2}  # tf32-free fp32, fp16, bf16


def _flops(b: int, h: int, lq: int, lk: int, d: int, causal: bool, mode: str) -> float:
    f = 4.0 * b * h * lq * lk * d * (0.5 if causal and lq == lk else 1.0)
    return f * (2.5 if mode == "bwd" else 1.0)


def _correctness(quick: bool) -> list:
    from papercommon.bench import Record
    from papercommon.testing import poison_outputs

    from fastattention import attention

    cases = [  # b, h, hk, lq, lk, d, kwargs, dtype
        (2, 8, 8, 1024, 1024, 64, {"causal": False}, torch.bfloat16),
        (2, 8, 8, 1024, 1024, 128, {"causal": True}, torch.bfloat16),
        (1, 12, 4, 777, 1500, 128, {"causal": True}, torch.float16),  # GQA, bottom-right, ragged
        (1, 8, 2, 2048, 2048, 64, {"window": 256}, torch.bfloat16),
        (1, 4, 4, 300, 100, 80, {"causal": True}, torch.float16),  # empty rows, head_dim 80 padded to 128
        (3, 4, 1, 1, 4099, 128, {"causal": True}, torch.bfloat16),  # decoding, MQA
        (1, 4, 2, 513, 513, 64, {"causal": True}, torch.float32),
    ]
    if not quick:
        cases += [(1, 16, 16, 8192, 8192, 128, {"causal": True}, torch.bfloat16),
                  (1, 8, 8, 4096, 4096, 256, {"causal": False}, torch.bfloat16),
                  (2, 8, 8, 333, 333, 32, {"window": (64, 16), "causal": False}, torch.float16)]
    records = []
    for b, h, hk, lq, lk, d, kw, dt in cases:
        g = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (torch.randn(*s, device="cuda", dtype=dt, generator=g).requires_grad_()
                   for s in ((b, h, lq, d), (b, hk, lk, d), (b, hk, lk, d)))
        do = torch.randn(b, h, lq, d, device="cuda", dtype=dt, generator=g)
        with poison_outputs():
            o, lse = attention(q, k, v, backend="triton", return_lse=True, **kw)
            dq, dk, dv = torch.autograd.grad(o, (q, k, v), do)
        qr, kr, vr = (t.detach().float().requires_grad_() for t in (q, k, v))
        o_ref, lse_ref = attention(qr, kr, vr, backend="torch", return_lse=True, **kw)  # fp32 tiled torch
        ref_grads = torch.autograd.grad(o_ref, (qr, kr, vr), do.float())
        tol = TOL[dt]

        def err(a, r):
            a, r = a.float(), r.float()
            if not torch.equal(torch.isnan(a), torch.isnan(r)):
                return math.inf
            fin = torch.isfinite(r)
            if not torch.equal(torch.isfinite(a), fin):
                return math.inf
            return ((a[fin] - r[fin]).abs().max() / max(1.0, r[fin].abs().max().item())).item() if fin.any() else 0.0

        errs = {"o": err(o, o_ref), "lse": err(lse, lse_ref), "dq": err(dq, ref_grads[0]), "dk": err(dk, ref_grads[1]),
                "dv": err(dv, ref_grads[2])}
        max_err = max(errs.values())
        grad_tol = 4 * tol
        ok = errs["o"] <= tol and errs["lse"] <= tol and max(errs["dq"], errs["dk"], errs["dv"]) <= grad_tol
        records.append(Record(f"fastattention/check-{b}x{h}/{hk}x{lq}x{lk}x{d}-{str(dt)[6:]}-{'-'.join(map(str, kw.items()))}",
                              config={"shape": [b, h, hk, lq, lk, d], "mask": {k_: str(v_) for k_, v_ in kw.items()},
                                      "dtype": str(dt)},
                              metrics={**{f"err_{k_}": v_ for k_, v_ in errs.items()}, "max_err": max_err, "tol": tol,
                                       "grad_tol": grad_tol, "ok": ok}))
    return records


def _time_one(fn, bench_kw):
    from papercommon.bench import benchmark

    try:
        return benchmark(fn, device="cuda", **bench_kw).median_ms
    except Exception:  # a backend that cannot run this shape (recorded as None)
        return None


def _performance(quick: bool) -> list:
    from papercommon.bench import Record
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from fastattention import attention

    ns = [1024, 4096, 16384] if quick else [1024, 2048, 4096, 8192, 16384, 32768]
    bench_kw = {"warmup": 5, "rep": 20 if quick else 50}
    configs = {"default": TilingConfig()}
    if not quick:
        configs.update({
            "m128-n64x1-w4-s3": TilingConfig(triton_block_m=128, triton_block_n=64, triton_block_n_outer=64,
                                              triton_num_warps=4, triton_num_stages=3),
            "m128-n128x1-w8-s2": TilingConfig(triton_block_m=128, triton_block_n=128, triton_block_n_outer=128),
            "m64-n64x2-w4-s3": TilingConfig(triton_block_m=64, triton_block_n=64, triton_block_n_outer=128,
                                            triton_num_warps=4, triton_num_stages=3),
        })
    records = []
    dt = torch.bfloat16
    for d in (64, 128):
        for n in ns:
            b, h = max(1, 16384 // n), 2048 // d
            for causal in (False, True):
                q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=dt, requires_grad=True) for _ in range(3))
                do = torch.randn_like(q)
                fl_f, fl_b = _flops(b, h, n, n, d, causal, "fwd"), _flops(b, h, n, n, d, causal, "bwd")
                base = {}
                for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                    def sdpa(be=be):
                        with sdpa_kernel(be):
                            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    base[name] = _time_one(lambda: sdpa().detach(), bench_kw)
                    try:
                        o_b = sdpa()
                        base[f"{name}_bwd"] = _time_one(lambda o_b=o_b: torch.autograd.grad(o_b, (q, k, v), do,
                                                                                         retain_graph=True), bench_kw)
                    except Exception:
                        base[f"{name}_bwd"] = None
                best_name, best_f, best_cfg = None, math.inf, None
                for cname, cfg in configs.items():
                    t = _time_one(lambda cfg=cfg: attention(q, k, v, causal=causal, backend="triton", tiling=cfg).detach(),
                                  bench_kw)
                    if t is not None and t < best_f:
                        best_name, best_f, best_cfg = cname, t, cfg
                o = attention(q, k, v, causal=causal, backend="triton", tiling=best_cfg)
                t_b = _time_one(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), bench_kw)
                flash = base["flash"]
                rec = Record(
                    f"fastattention/perf-bf16-d{d}-n{n}-{'causal' if causal else 'full'}",
                    config={"shape": [b, h, n, d], "dtype": "bfloat16", "causal": causal, "tiling": best_name,
                            "baseline": "SDPA flash (and cuDNN)"},
                    metrics={"ms": best_f, "baseline_ms": flash, "speedup": (flash / best_f) if flash else None,
                             "TFLOP/s": fl_f / best_f / 1e9,
                             "flash_TFLOP/s": fl_f / flash / 1e9 if flash else None,
                             "cudnn_ms": base["cudnn"], "cudnn_TFLOP/s": fl_f / base["cudnn"] / 1e9 if base["cudnn"] else None,
                             "bwd_ms": t_b, "bwd_TFLOP/s": fl_b / t_b / 1e9 if t_b else None,
                             "flash_bwd_ms": base["flash_bwd"],
                             "flash_bwd_TFLOP/s": fl_b / base["flash_bwd"] / 1e9 if base["flash_bwd"] else None,
                             "cudnn_bwd_TFLOP/s": fl_b / base["cudnn_bwd"] / 1e9 if base["cudnn_bwd"] else None,
                             "fwd_vs_flash": (flash / best_f) if flash else None})
                records.append(rec)
                torch.cuda.empty_cache()
    return records


def gpu_checks(quick: bool = False) -> list:
    """Correctness records (ok / max_err / tol per case) then bf16 performance records vs SDPA flash / cuDNN.

    Returns an empty list without CUDA or Triton.
    """
    from fastattention.kernels import HAS_TRITON

    if not (torch.cuda.is_available() and HAS_TRITON):
        return []
    return _correctness(quick) + _performance(quick)
