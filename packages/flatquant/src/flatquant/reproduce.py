"""Reproductions registered with ``papercommon reproduce flatquant`` (also ``python -m flatquant <name>``).

1. ``smollm2-ppl``: SmolLM2-135M perplexity on held-out text (gensim's Lee corpus, 50 documents never used
   for calibration; calibration on the 300 Lee background documents) for FP, RTN, SmoothQuant, QuaRot and
   FlatQuant at W4A4KV4, plus W4A16 and W8A8 (paper: Table 1, WikiText-2 on LLaMA).
2. ``minilm-embeddings``: all-MiniLM-L6-v2 W4A4KV4 sentence embeddings: cosine similarity to the FP ones and
   the Lee document-similarity Spearman, same methods.
3. ``ablation``: transform only, + per-channel scaling, + learnable clipping (paper: Table 5).
4. ``flatness``: kurtosis / top channel magnitude before and after the transforms, with a plot (Fig. 1).
5. ``overhead``: online transform cost relative to the linear layer it feeds (paper: Fig. 5/Table 6, 0.07x
   for FlatQuant's Kronecker transform vs 0.26x for QuaRot's Hadamard), on this machine.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from papercommon.reproduce import Claim, reproduction

from flatquant.config import FlatQuantConfig

# Paper, Table 1 (W4A4KV4, WikiText-2 PPL): Llama-3-8B and Llama-2-7B.
PAPER_PPL = {"llama-3-8b": {"fp": 6.14, "smoothquant": 210.19, "quarot": 10.60, "flatquant": 6.98},
             "llama-2-7b": {"fp": 5.47, "smoothquant": 83.12, "quarot": 8.56, "flatquant": 5.79}}

QUICK = {"nsamples": 4, "seqlen": 64, "epochs": 1, "eval_tokens": 512, "batch_size": 1}
FULL = {"nsamples": 128, "seqlen": 2048, "epochs": 15, "eval_tokens": None, "batch_size": 4}


def _settings(quick: bool, **override) -> dict[str, Any]:
    s = dict(QUICK if quick else FULL)
    s.update({k: v for k, v in override.items() if v is not None})
    return s


def _save(out: Path, name: str, config: dict, metrics: dict) -> Path:
    from papercommon.bench import Record

    return Record(f"flatquant/{name}", config=config, metrics=metrics).save(out / f"{name}.record.json")


# ----------------------------------------------------------------------------- data


def smollm2_data(tokenizer, nsamples: int, seqlen: int, eval_tokens: int | None):
    """Calibration ids ``[N, T]`` from the Lee background corpus and the held-out Lee documents as one stream."""
    from papercommon.data import lee_documents, text_corpus

    cal = tokenizer(text_corpus("lee"), return_tensors="pt").input_ids[0]
    n = min(nsamples, len(cal) // seqlen)
    if n < 1:
        raise ValueError(f"calibration corpus has {len(cal)} tokens, expected at least seqlen={seqlen}")
    docs, _ = lee_documents()
    ev = tokenizer("\n\n".join(docs), return_tensors="pt").input_ids[0]
    if eval_tokens is not None:
        ev = ev[:eval_tokens]
    return cal[: n * seqlen].reshape(n, seqlen), ev


def _ppl(model, ev) -> float:
    from papercommon.metrics import perplexity

    return float(perplexity(model, ev, context=512, batch_size=2))


def _runs(quick: bool) -> list[tuple[str, FlatQuantConfig]]:
    base = FlatQuantConfig()
    runs = [("rtn-w4a4kv4", replace(base, method="rtn")),
            ("smoothquant-w4a4kv4", replace(base, method="smoothquant")),
            ("quarot-w4a4kv4", replace(base, method="quarot")),
            ("flatquant-w4a4kv4", base),
            ("rtn-w4a16", replace(base, method="rtn", a_bits=16, k_bits=16, v_bits=16)),
            ("rtn-w8a8", replace(base, method="rtn", w_bits=8, a_bits=8, k_bits=8, v_bits=8))]
    if not quick:
        runs.append(("flatquant-w4a16", replace(base, a_bits=16, k_bits=16, v_bits=16)))
    return runs


def run_smollm2(quick: bool, out: Path, only: list[str] | None = None, fp: bool = True, **override
                ) -> dict[str, Any]:
    """Perplexity of SmolLM2-135M-Instruct under each method (one JSON record per method under ``out``)."""
    from papercommon.data import load_smollm2

    s = _settings(quick, **override)
    model, tok = load_smollm2()
    cal, ev = smollm2_data(tok, s["nsamples"], s["seqlen"], s["eval_tokens"])
    results: dict[str, Any] = {"settings": s, "calibration_shape": list(cal.shape), "eval_tokens": len(ev)}
    if fp:
        t0 = time.perf_counter()
        results["fp"] = {"ppl": _ppl(model, ev), "seconds": time.perf_counter() - t0}
        _save(out, "smollm2-fp", {"settings": s}, results["fp"])
    for name, cfg in _runs(quick):
        if only and name not in only:
            continue
        cfg = replace(cfg, nsamples=cal.shape[0], seqlen=cal.shape[1], epochs=s["epochs"],
                      batch_size=min(s["batch_size"], cal.shape[0]))
        results[name] = _quantize_and_ppl(model, cfg, cal, ev)
        _save(out, f"smollm2-{name}", {"settings": s, "flatquant": cfg.to_dict()}, results[name])
    return results


def _quantize_and_ppl(model, cfg: FlatQuantConfig, cal, ev) -> dict[str, Any]:
    import flatquant

    m = copy.deepcopy(model)
    report = flatquant.quantize_(m, cfg, cal)
    t0 = time.perf_counter()
    ppl = _ppl(m, ev)
    return {"ppl": ppl, "calibration_seconds": report.seconds, "eval_seconds": time.perf_counter() - t0,
            "mean_block_mse": report.mean_mse, "block_mse": [r["mse"] for r in report.layers]}


@reproduction("smollm2-ppl", "SmolLM2-135M W4A4KV4 perplexity: FP, RTN, SmoothQuant, QuaRot, FlatQuant (+ W4A16, W8A8)")
def smollm2_ppl(quick: bool, out: Path) -> list[Claim]:
    r = run_smollm2(quick, out)
    fq, rtn, sq, qr = (r[f"{m}-w4a4kv4"]["ppl"] for m in ("flatquant", "rtn", "smoothquant", "quarot"))
    fp = r["fp"]["ppl"]
    note = (f"SmolLM2-135M, Lee held-out PPL ({r['eval_tokens']} tokens); calibration {r['calibration_shape']} "
            f"tokens x {r['settings']['epochs']} epochs")
    p = PAPER_PPL["llama-3-8b"]
    return [
        Claim("Table 1", "PPL FP", p["fp"], fp, None, note),
        Claim("Table 1", "PPL W4A4KV4 RTN", "diverges", rtn, None, note),
        Claim("Table 1", "PPL W4A4KV4 SmoothQuant", p["smoothquant"], sq, None, note),
        Claim("Table 1", "PPL W4A4KV4 QuaRot", p["quarot"], qr, None, note),
        Claim("Table 1", "PPL W4A4KV4 FlatQuant", p["flatquant"], fq, None, note),
        Claim("Table 1", "FlatQuant closer to FP than RTN and SmoothQuant", "FQ << RTN, SQ", fq,
              fq < rtn and fq < sq, note),
        Claim("Table 1", "FlatQuant closer to FP than QuaRot", "FQ < QuaRot", fq, fq < qr, note),
        Claim("Sec. 4", "PPL W4A16 RTN / W8A8 RTN", "-", f"{r['rtn-w4a16']['ppl']:.2f} / {r['rtn-w8a8']['ppl']:.2f}",
              None, note),
    ]


# ----------------------------------------------------------------------------- the official code's setting

# The official FlatQuant code (ruikangliu/FlatQuant @9d88ffc) run on this project's data (research notes,
# ``shared/papers/flatquant.md`` (f)): SmolLM2-135M, W4A4KV4, 32 x 256 calibration tokens of the Lee background
# corpus, perplexity over the whole Lee text (5,151 tokens) in 512-token windows, CPU fp32, one thread.
OFFICIAL_SETTING = {"nsamples": 32, "seqlen": 256, "batch_size": 4, "eval_tokens": None}
OFFICIAL_PPL = {"fp": 31.35, "rtn": 18732.0, 2: 106.4, 5: 78.0}
OFFICIAL_SECONDS_PER_LAYER = {2: 8.6, 5: 23.0}  # one thread


def run_official(epochs: int, out: Path, seed: int = 0, name: str | None = None, progress: bool = True,
                 **config) -> dict[str, Any]:
    """FlatQuant W4A4KV4 on the official code's setting at ``epochs`` epochs; one record ``<name>.json``.

    ``config`` overrides :class:`FlatQuantConfig` fields (e.g. ``lwc=False`` for the ablation, ``nsamples``
    for the package-default variants)."""
    from papercommon.data import load_smollm2
    from papercommon.records import write_record

    import flatquant

    cfg = FlatQuantConfig(nsamples=OFFICIAL_SETTING["nsamples"], seqlen=OFFICIAL_SETTING["seqlen"],
                          batch_size=OFFICIAL_SETTING["batch_size"], epochs=epochs, seed=seed)
    cfg = replace(cfg, **config)
    torch.manual_seed(seed)
    model, tok = load_smollm2()
    cal, ev = smollm2_data(tok, cfg.nsamples, cfg.seqlen, OFFICIAL_SETTING["eval_tokens"])
    report = flatquant.quantize_(model, cfg, cal, progress=progress)
    t0 = time.perf_counter()
    ppl = _ppl(model, ev)
    layers = len(report.layers)
    metrics = {"ppl": ppl, "official_code_ppl": OFFICIAL_PPL.get(epochs), "eval_tokens": len(ev),
               "calibration_shape": list(cal.shape), "calibration_seconds": report.seconds,
               "seconds_per_layer": report.seconds / max(layers, 1),
               "official_seconds_per_layer": OFFICIAL_SECONDS_PER_LAYER.get(epochs),
               "torch_threads": torch.get_num_threads(), "eval_seconds": time.perf_counter() - t0,
               "mean_block_mse": report.mean_mse, "block_mse": [r["mse"] for r in report.layers]}
    write_record(out, name or f"official-flatquant-{epochs}ep-seed{seed}", config=cfg, metrics=metrics)
    return metrics


# ----------------------------------------------------------------------------- MiniLM


def run_minilm(quick: bool, out: Path, configs: list[tuple[str, FlatQuantConfig]] | None = None,
               **override) -> dict[str, Any]:
    """Cosine similarity of quantized MiniLM sentence embeddings to the FP ones, and Lee Spearman."""
    import numpy as np
    from papercommon.data import lee_documents, load_minilm, text_corpus
    from papercommon.metrics import spearman

    import flatquant
    from flatquant.analysis import sentence_embeddings

    s = _settings(quick, **override)
    seqlen = min(s["seqlen"], 256)
    model, tok = load_minilm()
    ids = tok(text_corpus("lee"), return_tensors="pt", add_special_tokens=False).input_ids[0]
    n = min(s["nsamples"] * (4 if quick else 1), len(ids) // seqlen)
    cal = ids[: n * seqlen].reshape(n, seqlen)
    docs, sims = lee_documents()
    iu = np.triu_indices(len(docs), 1)
    human = sims[iu]

    def evaluate(m):
        e = sentence_embeddings(m, tok, docs)
        return e, float(spearman((e @ e.T).numpy()[iu], human))

    fp_emb, fp_rho = evaluate(model)
    results: dict[str, Any] = {"settings": s, "calibration_shape": list(cal.shape), "fp": {"spearman": fp_rho}}
    base = FlatQuantConfig()
    configs = configs or [("rtn", replace(base, method="rtn")), ("smoothquant", replace(base, method="smoothquant")),
                          ("quarot", replace(base, method="quarot")), ("flatquant", base)]
    for name, cfg in configs:
        cfg = replace(cfg, nsamples=n, seqlen=seqlen, epochs=s["epochs"] * (3 if quick else 1),
                      batch_size=min(s["batch_size"], n))
        m = copy.deepcopy(model)
        report = flatquant.quantize_(m, cfg, cal)
        e, rho = evaluate(m)
        results[name] = {"cosine_to_fp": float((e * fp_emb).sum(-1).mean()), "spearman": rho,
                         "mean_block_mse": report.mean_mse, "calibration_seconds": report.seconds}
    _save(out, "minilm-embeddings", {"settings": s}, results)
    return results


@reproduction("minilm-embeddings", "all-MiniLM-L6-v2 W4A4KV4 embeddings: cosine to FP and Lee Spearman per method")
def minilm_embeddings(quick: bool, out: Path) -> list[Claim]:
    r = run_minilm(quick, out)
    note = f"all-MiniLM-L6-v2, Lee 50 docs (1,225 pairs); calibration {r['calibration_shape']}"
    claims = [Claim("-", "Lee Spearman FP", "-", r["fp"]["spearman"], None, note)]
    for m in ("rtn", "smoothquant", "quarot", "flatquant"):
        claims.append(Claim("-", f"cosine to FP, {m} W4A4KV4", "-", r[m]["cosine_to_fp"], None,
                            f"Spearman {r[m]['spearman']:.3f}"))
    fq = r["flatquant"]["cosine_to_fp"]
    claims.append(Claim("Sec. 4 (transfer to an encoder)", "FlatQuant embeddings closest to FP",
                        "FQ > QuaRot > SQ, RTN", fq, fq > max(r[m]["cosine_to_fp"] for m in ("rtn", "smoothquant",
                                                                                            "quarot")), note))
    return claims


# ----------------------------------------------------------------------------- ablation


ABLATION = [("transform", dict(add_diag=False, lwc=False, lac=False)),
            ("transform+diag", dict(add_diag=True, lwc=False, lac=False)),
            ("transform+diag+clip", dict(add_diag=True, lwc=True, lac=True))]


def run_ablation(quick: bool, out: Path, only: list[str] | None = None, **override) -> dict[str, Any]:
    """SmolLM2 W4A4KV4 perplexity of each ablation step (one record per step)."""
    from papercommon.data import load_smollm2

    s = _settings(quick, **override)
    model, tok = load_smollm2()
    cal, ev = smollm2_data(tok, s["nsamples"], s["seqlen"], s["eval_tokens"])
    res: dict[str, Any] = {}
    for name, kw in ABLATION:
        if only and name not in only:
            continue
        cfg = FlatQuantConfig(nsamples=cal.shape[0], seqlen=cal.shape[1], epochs=s["epochs"],
                              batch_size=min(s["batch_size"], cal.shape[0]), **kw)
        res[name] = _quantize_and_ppl(model, cfg, cal, ev)
        _save(out, f"ablation-{name}", {"settings": s, "flatquant": cfg.to_dict()}, res[name])
    return res


@reproduction("ablation", "Ablation: learnable transform, + per-channel scaling, + learnable clipping")
def ablation(quick: bool, out: Path) -> list[Claim]:
    s = _settings(quick)
    res = run_ablation(quick, out)
    p = [res[n]["ppl"] for n, _ in ABLATION]
    note = f"SmolLM2-135M W4A4KV4, Lee PPL; calibration {s['nsamples']}x{s['seqlen']} x {s['epochs']} epochs"
    return [Claim("Table 5", f"PPL {n}", "decreasing", v, None, note) for (n, _), v in zip(ABLATION, p)] + [
        Claim("Table 5", "each component helps (PPL non-increasing)", "yes", p, p[0] >= p[1] >= p[2], note)]


# ----------------------------------------------------------------------------- flatness


def run_flatness(quick: bool, out: Path, **override) -> dict[str, Any]:
    """Quantize SmolLM2 with FlatQuant, then measure flatness of every slot on held-out text; plot 4 slots."""
    from papercommon.data import load_smollm2

    import flatquant
    from flatquant.analysis import flatness_report, plot_flatness

    s = _settings(quick, **override)
    model, tok = load_smollm2()
    cal, ev = smollm2_data(tok, s["nsamples"], s["seqlen"], s["eval_tokens"])
    cfg = FlatQuantConfig(nsamples=cal.shape[0], seqlen=cal.shape[1], epochs=s["epochs"],
                          batch_size=min(s["batch_size"], cal.shape[0]))
    flatquant.quantize_(model, cfg, cal)
    rows = flatness_report(model, ev[:256].reshape(1, -1), keep_curves=True)
    shown = [r for r in rows if (r["layer"], r["slot"]) in {(0, "qkv"), (15, "upgate"), (15, "down"), (29, "down")}]
    plot_flatness(shown, out / "flatness.png", f"SmolLM2-135M, FlatQuant ({s['epochs']} epochs): sorted channel "
                  "magnitudes before (solid) / after (dashed) the transform")
    (out / "flatness.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "curves"} for r in rows],
                                                  indent=1))
    med = {}
    for k in ("act_before_kurtosis", "act_after_kurtosis", "act_before_top1_over_median", "act_after_top1_over_median",
              "weight_before_kurtosis", "weight_after_kurtosis", "weight_before_top1_over_median",
              "weight_after_top1_over_median"):
        med[k] = float(torch.tensor([r[k] for r in rows]).median())
    _save(out, "flatness", {"settings": s, "flatquant": cfg.to_dict()}, med)
    return med


@reproduction("flatness", "Flatness (kurtosis, top-1/median channel magnitude) before/after the transforms, plot")
def flatness(quick: bool, out: Path) -> list[Claim]:
    med = run_flatness(quick, out)
    flatter = med["act_after_kurtosis"] < med["act_before_kurtosis"]
    return [Claim("Fig. 1", "median activation kurtosis before -> after", "much flatter after",
                  f"{med['act_before_kurtosis']:.1f} -> {med['act_after_kurtosis']:.1f}", flatter, "all 120 slots"),
            Claim("Fig. 1", "median top-1/median channel magnitude (activations)", "-> ~1",
                  f"{med['act_before_top1_over_median']:.1f} -> {med['act_after_top1_over_median']:.1f}",
                  med["act_after_top1_over_median"] < med["act_before_top1_over_median"], "all 120 slots"),
            Claim("Fig. 1", "median weight kurtosis before -> after", "flatter",
                  f"{med['weight_before_kurtosis']:.1f} -> {med['weight_after_kurtosis']:.1f}", None, "")]


# ----------------------------------------------------------------------------- overhead


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Fast Walsh-Hadamard transform along the last dim (power of two), orthonormal: ``x H / sqrt(n)``,
    ``log2(n)`` butterfly stages as QuaRot's ``fast_hadamard_transform``."""
    t, n = x.shape
    y, h = x, 1
    while h < n:
        y = y.reshape(t, n // (2 * h), 2, h)
        y = torch.stack((y[:, :, 0] + y[:, :, 1], y[:, :, 0] - y[:, :, 1]), dim=2)
        h *= 2
    return y.reshape(t, n) / math.sqrt(n)


def transform_overhead(tokens: int = 2048, hidden: int = 4096, device: str = "cpu", dtype=torch.float32,
                       rep: int = 10) -> dict[str, float]:
    """Time of the online transform + quantization relative to the int4-fed linear layer it feeds (as a
    dense matmul of the same shape): Kronecker (FlatQuant) vs a dense rotation and a fast Walsh-Hadamard
    transform (QuaRot), all followed by the same per-token quantization."""
    from papercommon.bench import benchmark

    from flatquant import functional as FQ
    from flatquant import kernels

    g = torch.Generator().manual_seed(0)
    n1, n2 = FQ.get_decompose_dim(hidden)
    x = torch.randn(tokens, hidden, generator=g).to(device, dtype)
    w = torch.randn(hidden, hidden, generator=g).to(device, dtype)
    p1, p2 = (FQ.random_orthogonal(n, g).to(device, dtype) for n in (n1, n2))
    dense = FQ.random_orthogonal(hidden, g).to(device, dtype)
    sync = device if device != "cpu" else None
    t_lin = benchmark(lambda: x @ w.T, warmup=2, rep=rep, device=sync).median_ms
    t_kron = benchmark(lambda: kernels.transform_quant_unfused(x, p1, p2), warmup=2, rep=rep, device=sync).median_ms
    t_dense = benchmark(lambda: kernels.transform_quant_unfused(x @ dense, None, None), warmup=2, rep=rep,
                        device=sync).median_ms
    t_kron_only = benchmark(lambda: FQ.kronecker_matmul(x, p1, p2), warmup=2, rep=rep, device=sync).median_ms
    t_dense_only = benchmark(lambda: x @ dense, warmup=2, rep=rep, device=sync).median_ms
    res = {"linear_ms": t_lin, "kron_only_ms": t_kron_only, "dense_only_ms": t_dense_only,
           "kron_only_over_linear": t_kron_only / t_lin, "dense_only_over_linear": t_dense_only / t_lin, "kron_quant_ms": t_kron, "dense_rotation_quant_ms": t_dense,
           "kron_over_linear": t_kron / t_lin, "dense_over_linear": t_dense / t_lin, "n1": n1, "n2": n2}
    if hidden & (hidden - 1) == 0:
        res["fwht_quant_ms"] = benchmark(lambda: kernels.transform_quant_unfused(fwht(x), None, None), warmup=2,
                                         rep=rep, device=sync).median_ms
        res["fwht_over_linear"] = res["fwht_quant_ms"] / t_lin
    return res


@reproduction("overhead", "Online transform overhead relative to the linear layer (Kronecker vs Hadamard)")
def overhead(quick: bool, out: Path) -> list[Claim]:
    shape = dict(tokens=512, hidden=1024) if quick else dict(tokens=2048, hidden=4096)
    r = transform_overhead(**shape, rep=5 if quick else 10)
    _save(out, "overhead", shape, r)
    note = f"CPU fp32, {shape['tokens']} tokens, hidden {shape['hidden']} ({r['n1']}x{r['n2']}); unfused torch"
    return [Claim("Table 6", "Kronecker transform+quant time / linear time", 0.07, r["kron_over_linear"],
                  r["kron_over_linear"] < r["dense_over_linear"], note),
            Claim("Table 6", "QuaRot Hadamard (FWHT) transform+quant time / linear time", 0.26,
                  r.get("fwht_over_linear"), None, note),
            Claim("Table 6", "dense n x n rotation+quant time / linear time", "-", r["dense_over_linear"], None, note)]


REPRODUCTIONS = [smollm2_ppl, minilm_embeddings, ablation, flatness, overhead]
