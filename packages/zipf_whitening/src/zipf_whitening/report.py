"""Render the README's result tables from the committed JSON records (``results/``).

Run: ``uv run python -m zipf_whitening tables packages/zipf_whitening/results``.
"""

from __future__ import annotations

import json
from pathlib import Path

from zipf_whitening.reproduce import OFFICIAL_ON_OUR_DATA, PAPER_GLOVE840B_STS_AVG


def _load(results: Path, name: str) -> dict | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_tables(results: str | Path) -> str:
    results = Path(results)
    out = []
    g = _load(results, "glove_static_record.json")
    if g:
        commit = (g.get("git") or {}).get("commit", "")[:8]
        S, sym = g["metrics"]["scores"], g["metrics"]["symmetry"]
        out.append(f"GloVe 6B 50d x wordfreq ({g['metrics']['vocab']:,} words), Spearman; record "
                   f"`results/glove_static_record.json` (commit {commit}).\n")
        out.append("| method | Lee docs | WordSim-353 | SimLex-999 | mean | paper: GloVe-840B STS avg (x100) |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for m, v in S.items():
            out.append(f"| {m} | {_f(v['lee'])} | {_f(v['wordsim353'])} | {_f(v['simlex999'])} | {_f(v['mean'])} | "
                       f"{PAPER_GLOVE840B_STS_AVG.get(m, '-')} |")
        out.append("\nAgainst the official code on the same data (research notes (e)):\n")
        out.append("| benchmark | official raw | official UW | official ZW | ours ZW | delta |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for t, o in OFFICIAL_ON_OUR_DATA.items():
            ours = S["zipfian_whitening"][t]
            out.append(f"| {t} | {o['raw']:.3f} | {o['uniform_whitening']:.3f} | {o['zipfian_whitening']:.3f} | "
                       f"{ours:.4f} | {ours - o['zipfian_whitening']:+.4f} |")
        out.append("\nSymmetry scores of each word space (1 = symmetric):\n")
        keys = ["sym1_zipf", "sym2_zipf", "sym1_uniform", "sym2_uniform", "isoscore", "one_minus_avg_cos"]
        out.append("| space | " + " | ".join(keys) + " |")
        out.append("|---|" + "---:|" * len(keys))
        for m, v in sym.items():
            out.append(f"| {m} | " + " | ".join(_f(v[k]) for k in keys) + " |")
        r = g["metrics"]["symmetry_vs_performance"]
        out.append("| **Spearman with mean task score** | " + " | ".join(_f(r[k], 2) for k in keys) + " |")
    n = _load(results, "norms_record.json")
    if n:
        rho = n["metrics"]["spearman_norm_vs_info"]
        out.append("\nNorm against information content -log p(w) (Spearman), `results/norms_record.json`:\n")
        out.append("| space | 10k most frequent | 50k most frequent | all words |")
        out.append("|---|---:|---:|---:|")
        for m, v in rho.items():
            out.append(f"| {m} | {_f(v['top10000'])} | {_f(v['top50000'])} | {_f(v['all'])} |")
    c = _load(results, "minilm_tokens_record.json")
    if c:
        out.append("\nall-MiniLM-L6-v2 token vectors, Lee documents (Spearman), fitted on the 50 documents' own tokens, "
                   "`results/minilm_tokens_record.json`:\n")
        cols = ["raw", "token_centering", "type_centering", "token_whitening", "type_whitening"]
        out.append("| layers | tokens | " + " | ".join(cols) + " |")
        out.append("|---|---:|" + "---:|" * len(cols))
        for layer, v in c["metrics"].items():
            out.append(f"| {layer} | {v['n_tokens']} | " + " | ".join(_f(v[k]) for k in cols) + " |")
    b = _load(results, "bench_fit_record.json")
    if b:
        m, cfg = b["metrics"], b["config"]
        out.append(f"\nFit + transform on all {cfg['n']:,} x {cfg['d']} GloVe vectors ({cfg['dtype']}, {cfg['device']}, "
                   f"{cfg['threads']} threads, median of {cfg['rep']}), `results/bench_fit_record.json`:\n")
        out.append("| what | wall median (s) | wall min (s) | process CPU (s) |")
        out.append("|---|---:|---:|---:|")
        for k in ("zipfian_numpy", "zipfian_torch", "uniform_numpy", "official_svd_recipe", "sklearn_pca_whiten"):
            out.append(f"| {k} | {m[k + '_s']:.3f} | {m[k + '_min_s']:.3f} | {m[k + '_cpu_s']:.3f} |")
        out.append(f"\nmax abs difference: UniformWhitening vs PCA(whiten=True) in float64 "
                   f"{m['max_abs_diff_uniform_vs_pca64']:.1e}; ZipfianWhitening vs the official recipe in float64 "
                   f"{m['max_abs_diff_zipfian_vs_official_recipe64']:.1e}")
    return "\n".join(out) + "\n"
