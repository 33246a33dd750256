"""CPU benchmarks: ours vs transformers' DeepseekV3ForCausalLM (same weights), and absorbed vs naive decoding.

    uv run python packages/deepseek_moe/benchmarks/bench_cpu.py [--threads 1] [--quick]

Writes ``packages/deepseek_moe/results/bench_cpu.json`` (a papercommon Record) and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from deepseek_moe import DeepSeekV3, DeepSeekV3Config
from papercommon.bench import Record, benchmark

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _pair(cfg: DeepSeekV3Config):
    from transformers import DeepseekV3ForCausalLM

    torch.manual_seed(0)
    hf = DeepseekV3ForCausalLM(cfg.to_hf())
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = DeepSeekV3.from_pretrained(d, load_mtp=False)
    return hf, ours


def _interleaved(fa, fb, rep: int, warmup: int = 2) -> tuple[float, float]:
    """Median ms of ``fa`` and ``fb`` timed alternately, so that load changes on a shared CPU hit both alike."""
    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(rep):
        t = time.perf_counter()
        fa()
        ta.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        fb()
        tb.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ta), statistics.median(tb)


def bench_vs_hf(cfg: DeepSeekV3Config, batch: int, seq: int, rep: int) -> dict:
    hf, ours = _pair(cfg)
    x = torch.randint(0, cfg.vocab_size, (batch, seq))
    hf.eval()
    ours.eval()
    with torch.no_grad():
        diff = (hf(x).logits - ours(x).logits).abs().max().item()
        t_ours, t_hf = _interleaved(lambda: ours(x).logits, lambda: hf(x).logits, rep)
    res = {"max_abs_logit_diff": diff, "forward_ms": t_ours, "forward_ms_hf": t_hf,
           "forward_speedup": t_hf / t_ours, "forward_tokens_per_s": batch * seq / t_ours * 1e3}
    hf.train()
    ours.train()
    oh = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    oo = torch.optim.AdamW(ours.parameters(), lr=1e-4)

    def step_hf():
        loss = torch.nn.functional.cross_entropy(hf(x).logits.flatten(0, 1), x.flatten())
        oh.zero_grad()
        loss.backward()
        oh.step()

    def step_ours():
        out = ours(x, labels=x, compute_mtp=False)
        oo.zero_grad()
        out.loss.backward()
        oo.step()
        ours.update_expert_bias()

    t_ours, t_hf = _interleaved(step_ours, step_hf, rep)
    res.update({"train_step_ms": t_ours, "train_step_ms_hf": t_hf, "train_speedup": t_hf / t_ours,
                "train_tokens_per_s": batch * seq / t_ours * 1e3})
    return res


@torch.no_grad()
def bench_decode(cfg: DeepSeekV3Config, context: int, batch: int, rep: int) -> dict:
    torch.manual_seed(0)
    m = DeepSeekV3(cfg).eval()
    prompt = torch.randint(0, cfg.vocab_size, (batch, context))
    tok = torch.randint(0, cfg.vocab_size, (batch, 1))
    res = {}
    logits = {}
    for impl in ("absorb", "naive"):
        cache = m.new_cache(batch, context + 1, impl)
        for s in range(0, context, 512):  # prefill in chunks
            m(prompt[:, s:s + 512], cache=cache)

        def step(cache=cache, tok=tok):
            cache.length = context
            return m(tok, cache=cache).logits

        logits[impl] = step()
        t = benchmark(step, warmup=2, rep=rep)
        res[impl] = {"decode_ms": t.median_ms, "cache_bytes": cache.nbytes,
                     "cache_bytes_per_token": cache.bytes_per_token()}
    res["max_abs_logit_diff"] = (logits["absorb"] - logits["naive"]).abs().max().item()
    res["time_ratio_naive_over_absorb"] = res["naive"]["decode_ms"] / res["absorb"]["decode_ms"]
    res["cache_ratio_naive_over_absorb"] = res["naive"]["cache_bytes"] / res["absorb"]["cache_bytes"]
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = DeepSeekV3Config.preset("small", n_mtp=0)
    rep = 3 if a.quick else 7
    vs = bench_vs_hf(cfg, 8, 256, rep)
    dec = bench_decode(cfg, 4095, 1, rep * 3)  # 4095 cached tokens + the decoded one = max_seq_len
    rec = Record("deepseek_moe/bench_cpu", config={"model": cfg.to_dict(), "batch": 8, "seq": 256,
                                                   "decode_context": 4095, "threads": a.threads},
                 metrics={"vs_transformers": vs, "decode_4k": dec})
    RESULTS.mkdir(exist_ok=True)
    rec.save(RESULTS / "bench_cpu.json")
    print(f"forward  ours {vs['forward_ms']:.1f} ms  hf {vs['forward_ms_hf']:.1f} ms  x{vs['forward_speedup']:.2f}"
          f"  (max |dlogit| {vs['max_abs_logit_diff']:.1e})")
    print(f"train    ours {vs['train_step_ms']:.1f} ms  hf {vs['train_step_ms_hf']:.1f} ms  x{vs['train_speedup']:.2f}")
    print(f"decode@4K absorb {dec['absorb']['decode_ms']:.2f} ms / {dec['absorb']['cache_bytes'] / 2**20:.1f} MiB"
          f"   naive {dec['naive']['decode_ms']:.2f} ms / {dec['naive']['cache_bytes'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
