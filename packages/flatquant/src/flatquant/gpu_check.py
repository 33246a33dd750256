"""GPU checks of the fused kernel and the W4A4 linear layer (CUDA only; importable anywhere).

* ``kron_quant_pack`` vs ``kron_quant_pack_reference``: identical codes on an exact case (+-1 Hadamard
  factors, integer inputs); on random orthogonal factors the dot products may round differently from
  cuBLAS, so codes may differ by one step on rare ties: max |code diff| <= 1 and < 0.1% of codes differ.
  Outputs are poisoned (0xAA bytes, NaN scales) first. Timed against the unfused path (two matmuls, a
  quantization pass and a packing pass) and reported as GB/s against memory traffic.
* W4A4 linear prefill: fused transform+quant kernel, then ``torch._int_mm`` on the unpacked int4 codes and the
  per-token x per-channel rescale, against fp16 ``F.linear``; the int32 accumulator is checked bit-exact
  against the float64 reference.
* Online transform overhead (paper Table 6: 0.07x of the linear layer for FlatQuant, 0.26x for QuaRot).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from papercommon.bench import Record, benchmark

from flatquant import functional as FQ
from flatquant import kernels


def _kernel_records(quick: bool) -> list[Record]:
    recs = []
    g = torch.Generator().manual_seed(0)
    shapes = [(2048, 576), (2048, 4096)] if quick else [(2048, 576), (2048, 1536), (1024, 4096), (4096, 4096),
                                                          (8192, 4096), (2048, 11008)]
    for dtype in (torch.float16, torch.float32):
        for m, n in shapes:
            n1, n2 = FQ.get_decompose_dim(n)
            x = torch.randn(m, n, generator=g).to("cuda", dtype)
            p1 = FQ.random_orthogonal(n1, g).cuda()
            p2 = FQ.random_orthogonal(n2, g).cuda()
            out = torch.full((m, n // 2), 0xAA, dtype=torch.uint8, device="cuda")
            sc = torch.full((m, 1), float("nan"), device="cuda")
            packed, scale = kernels.kron_quant_pack(x, p1, p2, clip_max=0.95, clip_min=0.95, out=out, scale_out=sc)
            ref_p, ref_s = kernels.kron_quant_pack_reference(x, p1, p2, clip_max=0.95, clip_min=0.95)
            dq = (FQ.unpack_int4(packed).int() - FQ.unpack_int4(ref_p).int()).abs()
            max_err, frac = int(dq.max()), float((dq > 0).float().mean())
            s_err = float(((scale - ref_s).abs() / ref_s.abs()).max())
            ok = bool(max_err <= 1 and frac < 1e-3 and s_err < 1e-3 and torch.isfinite(scale).all())
            t = benchmark(lambda: kernels.kron_quant_pack(x, p1, p2), warmup=5, rep=50, device="cuda").median_ms
            p1h, p2h = p1.to(dtype), p2.to(dtype)
            tb = benchmark(lambda: kernels.transform_quant_unfused(x, p1h, p2h), warmup=5, rep=50,
                           device="cuda").median_ms
            nbytes = m * n * x.element_size() + m * n // 2 + m * 4
            recs.append(Record("flatquant/gpu/kron_quant_pack", config={"shape": [m, n], "factors": [n1, n2],
                                                                       "dtype": str(dtype)},
                               metrics={"max_err": max_err, "code_mismatch_frac": frac, "scale_rel_err": s_err,
                                        "tol": "codes +-1 on <0.1%, scales 1e-3", "ok": ok, "ms": t,
                                        "baseline": "two matmuls + quantize + pack (torch)", "baseline_ms": tb,
                                        "speedup": tb / t, "GB/s": nbytes / t / 1e6}))
    # exact case: identical codes
    for n1, n2 in [(64, 64), (24, 24)]:
        x = torch.randint(-3, 4, (1024, n1 * n2), generator=g).float().cuda()
        h1, h2 = FQ.hadamard(n1).float().cuda(), FQ.hadamard(n2).float().cuda()
        a = kernels.kron_quant_pack(x, h1, h2)
        b = kernels.kron_quant_pack_reference(x, h1, h2)
        ok = bool(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]))
        recs.append(Record("flatquant/gpu/kron_quant_pack_exact", config={"shape": [1024, n1 * n2]},
                           metrics={"max_err": int((a[0] != b[0]).sum()), "tol": 0, "ok": ok}))
    return recs


def _linear_records(quick: bool) -> list[Record]:
    recs = []
    g = torch.Generator().manual_seed(1)
    shapes = [(2048, 4096, 4096)] if quick else [(512, 4096, 4096), (2048, 4096, 4096), (8192, 4096, 4096),
                                                 (2048, 4096, 11008), (2048, 11008, 4096)]
    for m, k, n in shapes:
        k1, k2 = FQ.get_decompose_dim(k)
        x = torch.randn(m, k, generator=g).cuda().half()
        w = (torch.randn(n, k, generator=g) / k**0.5).cuda().half()
        p1, p2 = FQ.random_orthogonal(k1, g).cuda(), FQ.random_orthogonal(k2, g).cuda()
        wq, ws = FQ.quantize_sym(FQ.kronecker_matmul(w.float(), p1, p2), 4)  # orthogonal: P^{-T} = P
        wq_t = wq.t().contiguous()
        ws_h = ws.reshape(1, -1).half()

        def w4a4():
            packed, sx = kernels.kron_quant_pack(x, p1, p2)
            acc = torch._int_mm(FQ.unpack_int4(packed), wq_t)
            return acc.half() * sx.half() * ws_h

        acc = torch._int_mm(FQ.unpack_int4(kernels.kron_quant_pack(x, p1, p2)[0]), wq_t)
        ref = FQ.int_matmul_reference(FQ.unpack_int4(kernels.kron_quant_pack(x, p1, p2)[0]).cpu(), wq.cpu())
        exact = bool(torch.equal(acc.cpu(), ref))
        y, y16 = w4a4().float(), F.linear(x, w).float()
        rel = float((y - y16).norm() / y16.norm())
        t = benchmark(w4a4, warmup=5, rep=50, device="cuda").median_ms
        t_mm = benchmark(lambda: torch._int_mm(FQ.unpack_int4(kernels.kron_quant_pack(x, p1, p2)[0]), wq_t),
                         warmup=5, rep=20, device="cuda").median_ms
        xi = FQ.unpack_int4(kernels.kron_quant_pack(x, p1, p2)[0])
        t_int = benchmark(lambda: torch._int_mm(xi, wq_t), warmup=5, rep=50, device="cuda").median_ms
        tb = benchmark(lambda: F.linear(x, w), warmup=5, rep=50, device="cuda").median_ms
        t_kernel = benchmark(lambda: kernels.kron_quant_pack(x, p1, p2), warmup=5, rep=50, device="cuda").median_ms
        xf = x.float()
        t_fwht = benchmark(lambda: kernels.transform_quant_unfused(FQ.fwht(xf).half(), None, None), warmup=5, rep=20,
                           device="cuda").median_ms if k & (k - 1) == 0 else None
        flops = 2 * m * k * n
        recs.append(Record("flatquant/gpu/w4a4_linear", config={"shape": [m, k, n], "dtype": "int4 (int8 MMA) vs fp16"},
                           metrics={"max_err": rel, "tol": 0.2, "ok": exact and rel < 0.2, "int_acc_exact": exact,
                                    "ms": t, "baseline": "fp16 F.linear", "baseline_ms": tb, "speedup": tb / t,
                                    "int_mm_only_ms": t_int, "quant_plus_int_mm_ms": t_mm,
                                    "TFLOP/s": flops / t / 1e9, "baseline_TFLOP/s": flops / tb / 1e9,
                                    "transform_overhead_vs_linear": t_kernel / tb,
                                    "quarot_fwht_overhead_vs_linear": None if t_fwht is None else t_fwht / tb}))
    return recs


def gpu_checks(quick: bool = False) -> list[Record]:
    """Run every check on the current CUDA device; returns one record per (kernel, shape, dtype)."""
    if not torch.cuda.is_available():
        raise RuntimeError("flatquant.gpu_check: expected a CUDA device, found none")
    return _kernel_records(quick) + _linear_records(quick)


if __name__ == "__main__":
    import json

    for r in gpu_checks(quick=True):
        print(json.dumps(r.to_dict()["metrics"]))
