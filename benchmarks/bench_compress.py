"""Compression methods on one model: SmolLM2-135M quantized (flatquant) and sparsified (vnm_sparse).

Every row starts from the same FP model, calibrates on the Lee background corpus and is scored on Python's
reference documentation (pydoc), text that calibration never saw. Columns:

* perplexity on the held-out pydoc tokens (512-token windows);
* weight bytes: the bytes of the model's state dict as it is stored after compression (packed int4 codes
  and scales for quantized weights, values + column indices + 2:4 metadata for V:N:M weights);
* peak RAM is NOT reported: in one process the FP model's earlier prefill already set the RSS high-water
  mark, so a method's own peak cannot be isolated (the records keep the raw reading; it was 0 everywhere);
* CPU prefill latency at 512 tokens, measured interleaved with the FP model in the same process (median).

Rows: FP; FlatQuant W4A4KV4 and W4A16; RTN, SmoothQuant and QuaRot W4A4KV4; GPTQ W4A16 (all from flatquant);
V:N:M 2:4 and 64:2:8 (RIA scores), with and without channel permutation; and 64:2:8 then FlatQuant W4A4KV4.

Usage:
    uv run python benchmarks/run.py compress          # quick: small calibration (minutes)
    uv run python benchmarks/run.py compress --full   # the FlatQuant paper-like calibration (32 x 256, 2 epochs)
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable
from pathlib import Path

import flatquant
import torch
from papercommon.bench import Record, interleaved, peak_memory
from papercommon.data import load_smollm2, text_corpus
from papercommon.figures import figure
from papercommon.metrics import perplexity
from papercommon.records import markdown_table
from vnm_sparse import VNMConfig, collect_act_norms, permute_model_, sparsify_

SETTINGS = {
    True: {"calib": (8, 128), "epochs": 1, "eval_tokens": 2048, "rep": 7},
    False: {"calib": (32, 256), "epochs": 2, "eval_tokens": 16384, "rep": 9},
}


def _weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every tensor in the state dict, shared storages (tied embeddings) counted once."""
    seen, total = set(), 0
    for t in model.state_dict().values():
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def main(out: Path, quick: bool = True) -> list[Record]:
    st = SETTINGS[quick]
    torch.manual_seed(0)
    fp, tok = load_smollm2()
    lee = tok(text_corpus("lee"), return_tensors="pt").input_ids[0]
    pydoc = tok(text_corpus("pydoc"), return_tensors="pt").input_ids[0]
    n, sl = st["calib"]
    calib = lee[: n * sl].reshape(n, sl)
    prefill = pydoc[:512][None]
    heldout = pydoc[512:]

    def fq(**kw) -> flatquant.FlatQuantConfig:
        return flatquant.FlatQuantConfig(nsamples=n, seqlen=sl, batch_size=min(4, n), epochs=st["epochs"], **kw)

    def quantized(cfg: flatquant.FlatQuantConfig, base: torch.nn.Module | None = None) -> torch.nn.Module:
        m = copy.deepcopy(base if base is not None else fp)
        flatquant.quantize_(m, cfg, calib, progress=False)
        flatquant.reparameterize(m)
        return m

    norms = collect_act_norms(fp, [calib[i:i + 1] for i in range(n)])

    def sparse(v: int, m: int, permute: bool) -> torch.nn.Module:
        cfg = VNMConfig(v=v, m=m, score="ria", pad=True)
        model = copy.deepcopy(fp)
        act = norms
        if permute:
            permute_model_(model, cfg, act_norms=norms, iters=1)
            act = collect_act_norms(model, [calib[i:i + 1] for i in range(n)])
        sparsify_(model, cfg, act_norms=act)
        return model

    def stacked() -> torch.nn.Module:
        from vnm_sparse import prune_

        base = copy.deepcopy(fp)
        prune_(base, VNMConfig(v=64, m=8, score="ria", pad=True), act_norms=norms)
        return quantized(fq(), base)

    rows: dict[str, tuple[str, Callable[[], torch.nn.Module]]] = {
        "FP (fp32)": ("-", lambda: fp),
        "FlatQuant W4A4KV4": ("flatquant", lambda: quantized(fq())),
        "FlatQuant W4A16": ("flatquant", lambda: quantized(fq(a_bits=16, k_bits=16, v_bits=16))),
        "RTN W4A4KV4": ("flatquant", lambda: quantized(fq(method="rtn"))),
        "SmoothQuant W4A4KV4": ("flatquant", lambda: quantized(fq(method="smoothquant"))),
        "QuaRot W4A4KV4": ("flatquant", lambda: quantized(fq(method="quarot"))),
        "GPTQ W4A16": ("flatquant", lambda: quantized(fq(method="rtn", weight_quantizer="gptq", a_bits=16,
                                                             k_bits=16, v_bits=16))),
        "2:4 (RIA)": ("vnm_sparse", lambda: sparse(64, 4, False)),
        "2:4 (RIA) + permutation": ("vnm_sparse", lambda: sparse(64, 4, True)),
        "64:2:8 (RIA)": ("vnm_sparse", lambda: sparse(64, 8, False)),
        "64:2:8 (RIA) + permutation": ("vnm_sparse", lambda: sparse(64, 8, True)),
        "64:2:8 then FlatQuant W4A4KV4": ("vnm_sparse + flatquant", stacked),
    }
    records = []
    for name, (package, build) in rows.items():
        t0 = time.perf_counter()
        try:
            model = build()
        except Exception as e:  # noqa: BLE001 - one failing method is reported in its row, the rest still run
            records.append(Record(f"compress/{name}", config={"package": package, **st},
                                  metrics={"error": f"{type(e).__name__}: {e}"}))
            print(f"[compress] {name}: {type(e).__name__}: {e}")
            continue
        build_s = time.perf_counter() - t0
        with torch.no_grad():
            ppl = perplexity(model, heldout, context=512, max_tokens=st["eval_tokens"], batch_size=2)
            peak = peak_memory(lambda model=model: model(prefill))
            ts = interleaved({"fp": lambda: fp(prefill), "method": lambda model=model: model(prefill)},
                             rep=st["rep"], warmup=1)
        rec = Record(f"compress/{name}", config={"package": package, "calibration": "lee", "heldout": "pydoc", **st},
                     metrics={"perplexity": ppl, "weight_bytes": _weight_bytes(model), "peak_prefill_bytes": peak,
                              "prefill_ms": ts["method"].median_ms, "fp_prefill_ms": ts["fp"].median_ms,
                              "prefill_vs_fp": ts["method"].median_ms / ts["fp"].median_ms,
                              "build_seconds": build_s})
        records.append(rec)
        print(f"[compress] {name}: ppl {ppl:.2f}, {rec.metrics['weight_bytes'] / 2**20:.1f} MiB, "
              f"prefill x{rec.metrics['prefill_vs_fp']:.2f} ({build_s:.0f} s to build)")
        if model is not fp:
            del model
            gc.collect()
    _write(out, records, quick)
    return records


def _write(out: Path, records: list[Record], quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if "perplexity" in r.metrics]
    rows = [[r.name.removeprefix("compress/"), r.config["package"], r.metrics["perplexity"],
             f"{r.metrics['weight_bytes'] / 2**20:.1f}", f"{r.metrics['prefill_ms']:.0f}",
             f"{r.metrics['prefill_vs_fp']:.2f}x"] for r in ok]
    rows += [[r.name.removeprefix("compress/"), r.config["package"], "error", r.metrics["error"], "", ""]
             for r in records if "error" in r.metrics]
    mode = "quick" if quick else "full"
    (out / "table.md").write_text(
        f"<!-- `uv run python benchmarks/run.py compress{'' if quick else ' --full'}` ({mode}) -->\n"
        + markdown_table(["method", "package", "pydoc ppl", "weight MiB", "prefill 512 ms", "vs FP"], rows))
    with figure(out / "pareto.png", figsize=(6.5, 4.2), title="SmolLM2-135M: held-out perplexity vs weight bytes") as ax:
        for r in ok:
            ax.scatter(r.metrics["weight_bytes"] / 2**20, r.metrics["perplexity"], s=18)
            ax.annotate(r.name.removeprefix("compress/"), (r.metrics["weight_bytes"] / 2**20, r.metrics["perplexity"]),
                        fontsize=6, xytext=(3, 2), textcoords="offset points")
        front, best = [], float("inf")
        for r in sorted(ok, key=lambda r: r.metrics["weight_bytes"]):
            if r.metrics["perplexity"] < best:
                best = r.metrics["perplexity"]
                front.append(r)
        ax.plot([r.metrics["weight_bytes"] / 2**20 for r in front], [r.metrics["perplexity"] for r in front],
                "k--", lw=0.8, label="Pareto front")
        ax.set_yscale("log")
        ax.set_xlabel("weight bytes (MiB, as stored)")
        ax.set_ylabel("pydoc perplexity (log)")
