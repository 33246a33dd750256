"""Attention inside real models: fastattention against the attention a user already has.

1. SmolLM2-135M (transformers) with ``attn_implementation="fastattention"`` against ``"sdpa"`` and ``"eager"``:
   the largest logit difference from eager (quick: eager up to 2K, sdpa's logits the reference at 8K), prefill
   time (interleaved, median) and the peak memory of one prefill in a fresh process, at 512, 2K and 8K tokens
   of real text (pydoc).
2. DeepSeek-V3 MLA prefill shapes (per-head q/k 192 = 128 + 64 RoPE, v 128; 16 heads): fastattention, which
   takes unequal q/v head dims directly, against SDPA on v padded to 192 (what ``deepseek_moe``'s
   ``MultiHeadLatentAttention`` runs without a cache).
3. Sliding window 1024 at long context with SmolLM2's GQA shape (9 query heads, 3 KV heads, d 64):
   fastattention against SDPA with a boolean band mask and against plain causal SDPA (16x the work at 16K).

Usage:
    uv run python benchmarks/run.py attention          # quick: fewer repeats at 8K
    uv run python benchmarks/run.py attention --full   # 7 repeats everywhere, window runs up to 32K
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from fastattention import attention
from fastattention.integrations import register_transformers
from papercommon.bench import Record, interleaved
from papercommon.data import load_smollm2, text_corpus
from papercommon.figures import figure
from papercommon.records import markdown_table

SETTINGS = {
    # tokens: timing repeats; eager runs up to eager_max tokens (at 8K its N x N scores make it the slowest
    # row by minutes, and no user would pick it there), the logits reference is eager where it runs, else sdpa
    True: {"lengths": {512: 5, 2048: 3, 8192: 1}, "eager_max": 2048, "mla": {2048: 5, 8192: 1},
           "window": {8192: 3, 16384: 1}},
    False: {"lengths": {512: 7, 2048: 7, 8192: 7}, "eager_max": 8192, "mla": {2048: 7, 8192: 7},
            "window": {8192: 7, 16384: 7, 32768: 7}},
}
IMPLS = ("eager", "sdpa", "fastattention")

# One prefill in a fresh process: its peak RSS growth over the loaded model is that implementation's own
# (in one process the first long prefill sets the high-water mark and hides every later one).
_PEAK_CHILD = """
import re, sys, torch
from fastattention.integrations import register_transformers
from papercommon.data import load_smollm2, text_corpus
def kib(field):
    return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
register_transformers()
model, tok = load_smollm2()
model.set_attn_implementation(sys.argv[1])
x = tok(text_corpus("pydoc"), return_tensors="pt").input_ids[:, :int(sys.argv[2])]
with torch.no_grad():
    model(x[:, :8])  # page the (memory-mapped) weights in first
open("/proc/self/clear_refs", "w").write("5")  # Linux: reset the RSS high-water mark to the current RSS
before = kib("VmRSS")
with torch.no_grad():
    model(x)
print((kib("VmHWM") - before) * 1024)
"""


def _peak_in_fresh_process(impl: str, n: int) -> int:
    run = subprocess.run([sys.executable, "-c", _PEAK_CHILD, impl, str(n)], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"peak-memory child for {impl} at {n} tokens failed:\n{run.stderr[-2000:]}")
    return int(run.stdout.split()[-1])


def smollm2_rows(st: dict) -> list[Record]:
    register_transformers()
    model, tok = load_smollm2()
    ids = tok(text_corpus("pydoc"), return_tensors="pt").input_ids[0]
    records = []
    for n, rep in st["lengths"].items():
        x = ids[:n][None]
        impls = [i for i in IMPLS if i != "eager" or n <= st["eager_max"]]
        ref_impl = impls[0]

        def run(impl: str, x: torch.Tensor = x) -> torch.Tensor:
            model.set_attn_implementation(impl)
            with torch.no_grad():
                return model(x).logits

        ref = run(ref_impl)
        diffs = {impl: 0.0 if impl == ref_impl else (run(impl) - ref).abs().max().item() for impl in impls}
        del ref
        peaks = {impl: _peak_in_fresh_process(impl, n) for impl in impls}
        ts = interleaved({impl: lambda impl=impl: run(impl) for impl in impls}, rep=rep, warmup=0)
        for impl in impls:
            records.append(Record(f"attention/smollm2/{impl}/{n}", config={"model": "SmolLM2-135M", "tokens": n,
                                                                          "impl": impl, "rep": rep},
                                  metrics={"prefill_ms": ts[impl].median_ms, "vs_sdpa": ts[impl].median_ms /
                                           ts["sdpa"].median_ms, f"max_logit_diff_vs_{ref_impl}": diffs[impl],
                                           "peak_bytes": peaks[impl]}))
        print(f"[attention] SmolLM2 {n}: " + ", ".join(f"{i} {ts[i].median_ms:.0f} ms, "
                                                       f"{peaks[i] / 2**20:.0f} MiB" for i in impls))
    model.set_attn_implementation("sdpa")
    return records


def mla_rows(st: dict) -> list[Record]:
    H, dn, R, dv = 16, 128, 64, 128
    records = []
    g = torch.Generator().manual_seed(0)
    for n, rep in st["mla"].items():
        q = torch.randn(1, H, n, dn + R, generator=g)
        k = torch.randn(1, H, n, dn + R, generator=g)
        v = torch.randn(1, H, n, dv, generator=g)
        scale = (dn + R) ** -0.5

        def sdpa_padded():
            return F.scaled_dot_product_attention(q, k, F.pad(v, (0, dn + R - dv)), is_causal=True, scale=scale)[..., :dv]

        def fast():
            return attention(q, k, v, causal=True, scale=scale, backend="torch")

        diff = (fast() - sdpa_padded()).abs().max().item()
        ts = interleaved({"sdpa (v padded)": sdpa_padded, "fastattention": fast}, rep=rep, warmup=1)
        for impl, t in ts.items():
            records.append(Record(f"attention/mla/{impl}/{n}", config={"heads": H, "qk_dim": dn + R, "v_dim": dv,
                                                                      "tokens": n, "impl": impl, "rep": rep},
                                  metrics={"prefill_ms": t.median_ms, "vs_sdpa": t.median_ms /
                                           ts["sdpa (v padded)"].median_ms, "max_diff_vs_sdpa": diff}))
        print(f"[attention] MLA {n}: " + ", ".join(f"{i} {t.median_ms:.0f} ms" for i, t in ts.items()))
    return records


def window_rows(st: dict, window: int = 1024) -> list[Record]:
    records = []
    g = torch.Generator().manual_seed(0)
    for n, rep in st["window"].items():
        q = torch.randn(1, 9, n, 64, generator=g)
        k, v = torch.randn(1, 3, n, 64, generator=g), torch.randn(1, 3, n, 64, generator=g)
        i = torch.arange(n)
        band = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < window)   # [n, n] bool, True = visible

        def sdpa_mask():
            return F.scaled_dot_product_attention(q, k, v, attn_mask=band, enable_gqa=True)

        def sdpa_causal():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

        def fast():
            return attention(q, k, v, causal=True, window=window, backend="torch")

        diff = (fast() - sdpa_mask()).abs().max().item()
        fns = {"sdpa + band mask": sdpa_mask, "sdpa causal (no window)": sdpa_causal, "fastattention window": fast}
        ts = interleaved(fns, rep=rep, warmup=1)
        for name, t in ts.items():
            records.append(Record(f"attention/window{window}/{name}/{n}",
                                  config={"tokens": n, "window": window, "impl": name, "rep": rep, "q_heads": 9,
                                          "kv_heads": 3},
                                  metrics={"prefill_ms": t.median_ms, "vs_sdpa": t.median_ms /
                                           ts["sdpa + band mask"].median_ms, "max_diff_vs_sdpa": diff}))
        print(f"[attention] window {n}: " + ", ".join(f"{i} {t.median_ms:.0f} ms" for i, t in ts.items()))
    return records


def main(out: Path, quick: bool = True) -> list[Record]:
    st = SETTINGS[quick]
    t0 = time.perf_counter()
    records = smollm2_rows(st) + mla_rows(st) + window_rows(st)
    print(f"[attention] {time.perf_counter() - t0:.0f} s")
    _write(out, records, quick)
    return records


def _write(out: Path, records: list[Record], quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in records:
        m, c = r.metrics, r.config
        diff = next(v for k, v in m.items() if k.startswith("max_"))
        ref = next(k for k in m if k.startswith("max_")).rsplit("_", 1)[1]
        what = r.name.split("/")[1]
        rows.append([what, c["impl"], c["tokens"], f"{m['prefill_ms']:.1f}", f"{m['vs_sdpa']:.2f}x", f"{diff:.1e} ({ref})",
                     f"{m['peak_bytes'] / 2**20:.0f}" if "peak_bytes" in m else "-", c["rep"]])
    (out / "table.md").write_text(
        f"<!-- `uv run python benchmarks/run.py attention{'' if quick else ' --full'}` -->\n"
        + markdown_table(["setting", "attention", "tokens", "ms (median)", "time vs SDPA", "max |diff|",
                          "peak MiB", "repeats"], rows)
        + "\n`max |diff|`: SmolLM2 rows against eager logits (sdpa's where eager does not run); MLA and window rows "
          "against SDPA's output. Peak MiB: RSS high-water growth of one prefill in a fresh process, over the loaded and paged-in model "
          "(SmolLM2 rows only).\n")
    with figure(out / "prefill.png", ncols=3, figsize=(13, 3.6), title="prefill time (ms, log)") as axes:
        for ax, what in zip(axes, ("smollm2", "mla", "window1024")):
            sel = [r for r in records if r.name.split("/")[1] == what]
            for impl in dict.fromkeys(r.config["impl"] for r in sel):
                pts = sorted((r.config["tokens"], r.metrics["prefill_ms"]) for r in sel if r.config["impl"] == impl)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=impl)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("tokens")
            ax.set_title({"smollm2": "SmolLM2-135M prefill", "mla": "MLA attention (V3 head dims)",
                          "window1024": "window 1024, GQA 9/3"}[what], fontsize=9)
