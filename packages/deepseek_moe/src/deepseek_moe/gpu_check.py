"""GPU validation of deepseek_moe's kernels (CUDA only; importable without a GPU).

* ``fp8_gemm`` (Triton) against ``fp8_gemm_reference`` (dequantize + fp32 matmul) at small and DeepSeek-V3
  shapes, outputs poisoned with NaN first; timed against bf16 ``torch.matmul`` with TFLOP/s.
* MoE sorted dispatch (``torch._grouped_mm`` on CUDA) against the per-expert reference, forward and backward.
* MLA decode step at a long context: absorbed against naive cache (time and cache bytes).

Run: ``python -m deepseek_moe.gpu_check [--quick]``.
"""

from __future__ import annotations

import sys

import torch
from papercommon.bench import Record, benchmark

FP8_SHAPES_QUICK = [(1, 256, 512), (17, 300, 384), (4096, 2048, 7168)]
FP8_SHAPES_FULL = FP8_SHAPES_QUICK + [(128, 7168, 2048), (4096, 18432, 7168), (4096, 7168, 18432)]


def _check_fp8_gemm(M: int, N: int, K: int, out_dtype: torch.dtype) -> Record:
    from papercommon.testing import compare, poison_outputs

    from deepseek_moe.fp8 import act_quant, fp8_gemm, fp8_gemm_reference, weight_quant
    from deepseek_moe.kernels import fp8_gemm_triton

    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(M, K, device=dev, generator=g)
    b = torch.randn(N, K, device=dev, generator=g) * 0.05
    (aq, a_s), (bq, b_s) = act_quant(a), weight_quant(b)
    ref = fp8_gemm_reference(aq, a_s, bq, b_s, out_dtype=torch.float32)
    with poison_outputs():
        out = fp8_gemm(aq, a_s, bq, b_s, backend="triton", out_dtype=out_dtype)
    torch.cuda.synchronize()
    scale = float(ref.abs().max())
    tol = 1e-3 * scale if out_dtype == torch.float32 else 1e-2 * scale
    cmp = compare(out, ref, atol=tol, rtol=0.0)
    a16, b16 = a.bfloat16(), b.bfloat16()
    t = benchmark(lambda: fp8_gemm_triton(aq, a_s, bq, b_s, out_dtype=out_dtype), warmup=5, rep=20, device=dev)
    tb = benchmark(lambda: a16 @ b16.t(), warmup=5, rep=20, device=dev)
    flops = 2 * M * N * K
    return Record(f"deepseek_moe/fp8_gemm/{M}x{N}x{K}", config={"M": M, "N": N, "K": K, "dtype": "e4m3",
                                                                  "out_dtype": str(out_dtype), "block": 128},
                  metrics={"max_err": cmp["max_err"], "tol": tol, "ok": cmp["ok"], "ms": t.median_ms,
                           "baseline": "torch.matmul bf16", "baseline_ms": tb.median_ms,
                           "speedup": tb.median_ms / t.median_ms, "tflops": flops / t.median_ms / 1e9,
                           "baseline_tflops": flops / tb.median_ms / 1e9})


def _check_moe_dispatch() -> Record:
    from deepseek_moe import functional as Fn
    from deepseek_moe.config import DeepSeekV3Config
    from deepseek_moe.modules.moe import Experts

    cfg = DeepSeekV3Config.preset("small", dim=1024, moe_inter_dim=512, n_routed_experts=64, n_expert_groups=8,
                                  n_limited_groups=4, n_activated_experts=8)
    torch.manual_seed(0)
    ex = Experts(cfg).cuda().bfloat16()
    torch.nn.init.normal_(ex.gate_up_proj, std=0.02)
    torch.nn.init.normal_(ex.down_proj, std=0.02)
    N = 8192
    x = torch.randn(N, cfg.dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    idx = torch.randint(0, 64, (N, 8), device="cuda")
    w = torch.rand(N, 8, device="cuda")
    y = ex.forward_sorted(x, w, idx)
    gy = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, gy)
    ref = Fn.swiglu_experts_reference(x.float(), w, idx, ex.gate_up_proj.float(), ex.down_proj.float())
    (gref,) = torch.autograd.grad(ref, x, gy.float())
    err = float((y.float() - ref).abs().max().detach())
    gerr = float((gx.float() - gref).abs().max())
    tol, gtol = 2e-2 * float(ref.abs().max()), 2e-2 * float(gref.abs().max())
    t = benchmark(lambda: ex.forward_sorted(x, w, idx), warmup=3, rep=10, device="cuda")
    tr = benchmark(lambda: Fn.swiglu_experts_reference(x, w, idx, ex.gate_up_proj, ex.down_proj), warmup=2, rep=5,
                   device="cuda")
    flops = 2 * N * 8 * 3 * cfg.dim * cfg.moe_inter_dim
    return Record("deepseek_moe/moe_sorted_dispatch", config={"tokens": N, "experts": 64, "topk": 8,
                                                              "dim": cfg.dim, "inter": cfg.moe_inter_dim,
                                                              "dtype": "bf16"},
                  metrics={"max_err": err, "tol": tol, "grad_max_err": gerr, "grad_tol": gtol,
                           "ok": err <= tol and gerr <= gtol, "ms": t.median_ms,
                           "baseline": "per-expert masked loop", "baseline_ms": tr.median_ms,
                           "speedup": tr.median_ms / t.median_ms, "tflops": flops / t.median_ms / 1e9})


def _check_mla_decode(context: int) -> Record:
    from deepseek_moe.config import DeepSeekV3Config
    from deepseek_moe.modules.attention import MLA, KVCache, RotaryEmbedding

    cfg = DeepSeekV3Config.preset("671b", n_heads=32, max_seq_len=context + 8)
    torch.manual_seed(0)
    m = MLA(cfg).cuda().bfloat16()
    rot = RotaryEmbedding(cfg)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.02)
    rot = rot.cuda()
    B, H, dn = 4, cfg.n_heads, cfg.qk_nope_head_dim
    # The cache content of a prefilled context: normalised latents and RoPE'd shared keys (same for both modes).
    lat = torch.randn(B, context, cfg.kv_lora_rank, device="cuda", dtype=torch.bfloat16)
    k_pe = torch.randn(B, context, cfg.qk_rope_head_dim, device="cuda", dtype=torch.bfloat16)
    step = torch.randn(B, 1, cfg.dim, device="cuda", dtype=torch.bfloat16)
    res, outs = {}, {}
    cos, sin = rot(context, 1)
    for impl in ("absorb", "naive"):
        cache = KVCache(cfg, 1, B, context + 1, impl=impl, dtype=torch.bfloat16, device="cuda")
        with torch.no_grad():
            if impl == "absorb":
                cache.kv[0][:, :context], cache.pe[0][:, :context] = lat, k_pe
            else:
                for s in range(0, context, 4096):
                    kvx = m.kv_b_proj(lat[:, s:s + 4096]).view(B, -1, H, dn + cfg.v_head_dim)
                    n = kvx.shape[1]
                    cache.kv[0][:, s:s + n] = torch.cat([kvx[..., :dn], k_pe[:, s:s + n, None].expand(-1, -1, H, -1)],
                                                        -1)
                    cache.pe[0][:, s:s + n] = kvx[..., dn:]

            def dec(cache=cache):
                cache.length = context
                return m(step, cos, sin, cache)

            outs[impl] = dec().float()
            res[impl] = (benchmark(dec, warmup=3, rep=20, device="cuda").median_ms, cache.nbytes)
        del cache
    err = float((outs["absorb"] - outs["naive"]).abs().max())
    tol = 2e-2 * float(outs["naive"].abs().max())
    return Record(f"deepseek_moe/mla_decode/{context}", config={"context": context, "batch": B, "heads": 32,
                                                                "dtype": "bf16"},
                  metrics={"max_err": err, "tol": tol, "ok": err <= tol, "ms": res["absorb"][0],
                           "baseline": "naive (expanded k/v) cache", "baseline_ms": res["naive"][0],
                           "speedup": res["naive"][0] / res["absorb"][0], "cache_bytes": res["absorb"][1],
                           "baseline_cache_bytes": res["naive"][1],
                           "gb_per_s": res["absorb"][1] / res["absorb"][0] / 1e6})


def gpu_checks(quick: bool = False) -> list[Record]:
    """Check every kernel against its reference on CUDA and time it against its baseline."""
    if not torch.cuda.is_available():
        raise RuntimeError("deepseek_moe.gpu_check.gpu_checks needs a CUDA device")
    recs = []
    fp8_ok = torch.cuda.get_device_capability() >= (8, 9)  # e4m3 tensor cores: Ada / Hopper and newer
    if fp8_ok:
        for M, N, K in FP8_SHAPES_QUICK if quick else FP8_SHAPES_FULL:
            for od in (torch.bfloat16,) if (quick or M * N > 1 << 22) else (torch.float32, torch.bfloat16):
                recs.append(_check_fp8_gemm(M, N, K, od))
    recs.append(_check_moe_dispatch())
    for ctx in (8192,) if quick else (8192, 32768):
        recs.append(_check_mla_decode(ctx))
    return recs


if __name__ == "__main__":
    for r in gpu_checks(quick="--quick" in sys.argv):
        print(r.name, {k: v for k, v in r.metrics.items() if k != "baseline"})
