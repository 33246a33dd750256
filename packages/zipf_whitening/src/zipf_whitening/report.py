"""Render the README's result tables from the JSON records of a ``reproduce`` run.

Run: ``uv run python -m zipf_whitening tables --out packages/zipf_whitening/results/quick``. A missing
or corrupt record raises :class:`papercommon.records.RecordError` (the CLI exits 1 naming the path).
"""

from __future__ import annotations

from pathlib import Path

from papercommon.records import markdown_table, read_record

from zipf_whitening.reproduce import OFFICIAL_ON_OUR_DATA, PAPER_GLOVE840B_STS_AVG, SCORES

PACKAGE = "zipf_whitening"


def _folder(results: str | Path) -> Path:
    """``results`` may be the ``--out`` folder of ``reproduce`` or its ``zipf_whitening`` sub-folder."""
    results = Path(results)
    return results / PACKAGE if (results / PACKAGE).is_dir() else results


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def claims_table(results: str | Path) -> str:
    """Every claim of every reproduction: paper | ours | verdict | note | record."""
    folder = _folder(results)
    rows = []
    for name in ("glove-static", "norms", "minilm-tokens", "sts"):
        rec = read_record(folder / f"{name}.json")
        if rec["metrics"].get("error"):
            rows.append([name, "-", "-", "-", "error", rec["metrics"]["error"], f"{name}.json"])
        for c in rec["metrics"]["claims"]:
            verdict = {True: "yes", False: "**no**", None: "n/a"}[c["holds"]]
            rows.append([c["paper_ref"], c["metric"], c["paper"], c["ours"], verdict, c["note"], f"{name}.json"])
    return markdown_table(["ref", "claim", "paper", "ours", "verdict", "note (seeds: 1, deterministic)", "record"],
                          rows)


def render_tables(results: str | Path) -> str:
    folder = _folder(results)
    out = []
    g = read_record(folder / "glove-static.data.json")
    S, sym = g["metrics"]["scores"], g["metrics"]["symmetry"]
    out.append(f"GloVe 6B 50d x wordfreq ({g['metrics']['vocab']:,} words), Spearman, 1 deterministic run; record "
               f"`glove-static.data.json`:\n")
    rows = [[m, _f(v["lee"]), _f(v["wordsim353"]), _f(v["simlex999"]), _f(v["mean"]),
             PAPER_GLOVE840B_STS_AVG.get(m, "-")] for m, v in S.items()]
    out.append(markdown_table(["method", "Lee docs", "WordSim-353", "SimLex-999", "mean",
                               "paper: GloVe-840B STS avg (x100)"], rows))
    out.append("Zipfian whitening: paper | official code on our data | ours:\n")
    rows = [[t, "67.75 (STS avg x100, GloVe-840B)", f"{o['zipfian_whitening']:.3f}", f"{S['zipfian_whitening'][t]:.4f}",
             f"{S['zipfian_whitening'][t] - o['zipfian_whitening']:+.4f}", 1, "glove-static.data.json"]
            for t, o in OFFICIAL_ON_OUR_DATA.items()]
    out.append(markdown_table(["benchmark", "paper", "official code, our data", "ours", "delta", "seeds", "record"],
                              rows))
    out.append("Symmetry scores of each word space (1 = symmetric):\n")
    rows = [[m, *(_f(v[k]) for k in SCORES)] for m, v in sym.items()]
    r = g["metrics"]["symmetry_vs_performance"]
    rows.append(["**Spearman with mean task score**", *(_f(r[k], 2) for k in SCORES)])
    out.append(markdown_table(["space", *SCORES], rows))
    n = read_record(folder / "norms.data.json")
    out.append("Norm against information content -log p(w) (Spearman), `norms.data.json`:\n")
    out.append(markdown_table(["space", "10k most frequent", "50k most frequent", "all words"],
                              [[m, _f(v["top10000"]), _f(v["top50000"]), _f(v["all"])]
                               for m, v in n["metrics"]["spearman_norm_vs_info"].items()]))
    c = read_record(folder / "minilm-tokens.data.json")
    cols = ["raw", "token_centering", "type_centering", "token_whitening", "type_whitening"]
    out.append("all-MiniLM-L6-v2 token vectors, Lee documents (Spearman), fitted on the 50 documents' own tokens, "
               "`minilm-tokens.data.json`:\n")
    out.append(markdown_table(["layers", "tokens", *cols],
                              [[layer, v["n_tokens"], *(_f(v[k]) for k in cols)] for layer, v in c["metrics"].items()]))
    out.append("Claims (`papercommon reproduce zipf_whitening`):\n")
    out.append(claims_table(results))
    return "\n".join(out)
