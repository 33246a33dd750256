"""Reproductions registered with ``papercommon reproduce zipf_whitening``.

* ``glove-static``: GloVe 6B 50d + wordfreq; Lee documents, WordSim-353, SimLex-999 for every method of
  Table 1; symmetry scores of each word space and how well they track task performance (Fig. 3).
* ``norms``: after Zipfian whitening rare words carry larger norms (Sec. 6, Fig. 4).
* ``minilm-tokens``: token-level (implicitly Zipfian) vs type-level (pseudo-uniform) whitening of
  all-MiniLM-L6-v2 token vectors on the Lee documents (Sec. 5, Table 3).
* ``sts``: the paper's STS tasks through Hugging Face ``datasets`` (skipped offline, with the reason).
Each writes a detailed record ``<name>.data.json`` (:func:`papercommon.records.write_record`) and its
figure next to the claims record ``<name>.json`` that ``papercommon reproduce`` writes. Everything is
deterministic (no sampling), so ``--seed`` changes nothing and one run is the whole spread. The fit
speed is a benchmark, not a reproduction: ``uv run python benchmarks/run.py cpu --only zipf_whitening``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from papercommon.figures import figure
from papercommon.metrics import spearman
from papercommon.records import write_record
from papercommon.reproduce import Claim, reproduction

from zipf_whitening.config import ZipfWhiteningConfig
from zipf_whitening.embedding import METHODS, load_glove_wordfreq, make_embedder
from zipf_whitening.evaluation import lee_spearman, word_similarity_spearman
from zipf_whitening.symmetry import symmetry_scores

#: Spearman of the *official* ZipfianWhitening/UniformWhitening classes on this exact data
#: (research notes, section (e)): raw, uniform whitening, Zipfian whitening.
OFFICIAL_ON_OUR_DATA = {
    "lee": {"raw": 0.425, "uniform_whitening": 0.425, "zipfian_whitening": 0.596},
    "wordsim353": {"raw": 0.503, "uniform_whitening": 0.542, "zipfian_whitening": 0.639},
    "simlex999": {"raw": 0.265, "uniform_whitening": 0.266, "zipfian_whitening": 0.343},
}
#: The paper's GloVe-840B averages over 7 STS tasks (Spearman x100; official results table).
PAPER_GLOVE840B_STS_AVG = {"raw": 52.69, "uniform_centering": 50.87, "uniform_whitening": 58.74, "abtt": 60.36,
                           "sif": 62.30, "zipfian_centering": 61.04, "zipfian_whitening": 67.75}
#: Word spaces whose symmetry is scored (SIF/uSIF act on sentences, not on the word space).
WORD_SPACES = ("raw", "uniform_centering", "zipfian_centering", "uniform_whitening", "zipfian_whitening", "abtt")
SCORES = ("sym1_zipf", "sym2_zipf", "sym1_uniform", "sym2_uniform", "isoscore", "one_minus_avg_cos")


def evaluate_glove(config: ZipfWhiteningConfig | None = None, methods=METHODS) -> dict:
    """Spearman on Lee / WordSim-353 / SimLex-999 and symmetry scores for every method."""
    from papercommon.data import lee_documents, simlex999, wordsim353

    cfg = config or ZipfWhiteningConfig()
    vectors, words, p = load_glove_wordfreq(cfg.wordlist)
    docs, sims = lee_documents()
    tasks = {"wordsim353": wordsim353(), "simlex999": simlex999()}
    out: dict = {"scores": {}, "symmetry": {}, "coverage": {}, "vocab": len(words)}
    for m in methods:
        emb = make_embedder(m, vectors, words, p, cfg)
        res = {"lee": lee_spearman(emb.embed(docs), sims)}
        for name, pairs in tasks.items():
            res[name], out["coverage"][name] = word_similarity_spearman(emb.embed_words, pairs)
        res["mean"] = float(np.mean(list(res.values())))
        out["scores"][m] = res
        if m in WORD_SPACES:
            out["symmetry"][m] = symmetry_scores(emb.table_, p)
    # how well does each symmetry score rank the spaces by downstream performance? (Fig. 3)
    spaces = [m for m in WORD_SPACES if m in out["symmetry"]]
    perf = [out["scores"][m]["mean"] for m in spaces]
    out["symmetry_vs_performance"] = {
        s: spearman([out["symmetry"][m][s] for m in spaces], perf) if len(spaces) > 2 else float("nan")
        for s in SCORES}
    return out


def _plot_glove(res: dict, path: Path) -> None:
    with figure(path, ncols=2, figsize=(13, 4.2)) as axes:
        methods = list(res["scores"])
        x = np.arange(len(methods))
        for i, task in enumerate(("lee", "wordsim353", "simlex999")):
            axes[0].bar(x + (i - 1) * 0.27, [res["scores"][m][task] for m in methods], 0.27, label=task)
        axes[0].set_xticks(x, methods, rotation=30, ha="right")
        axes[0].set_ylabel("Spearman")
        axes[0].set_title("GloVe 6B 50d + wordfreq")
        spaces = list(res["symmetry"])
        perf = [res["scores"][m]["mean"] for m in spaces]
        for s, mk in (("sym1_zipf", "o"), ("sym2_zipf", "s"), ("sym1_uniform", "x"), ("sym2_uniform", "+")):
            axes[1].scatter([res["symmetry"][m][s] for m in spaces], perf, marker=mk,
                            label=f"{s} (rho={res['symmetry_vs_performance'][s]:.2f})")
        for m in spaces:
            axes[1].annotate(m, (res["symmetry"][m]["sym2_zipf"], res["scores"][m]["mean"]), fontsize=7)
        axes[1].set_xlabel("symmetry score")
        axes[1].set_ylabel("mean Spearman (3 tasks)")
        axes[1].set_title("symmetry vs performance")


#: Largest |ours - official| Spearman accepted as "the same recipe" on our data: the official code's own
#: float32 weighted mean drifts by 1e-2 over 227k rows (notes (e)) and its NLTK tokeniser differs from our
#: regex one on the Lee documents; an independent numpy implementation gave 0.600 on Lee.
OFFICIAL_TOLERANCE = 0.01


@reproduction("glove-static", "GloVe + wordfreq: Lee docs, WordSim-353, SimLex-999 and symmetry scores (Table 1, Fig. 3)")
def glove_static(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    cfg = ZipfWhiteningConfig()
    res = evaluate_glove(cfg)
    write_record(out, "glove-static.data", config={**cfg.to_dict(), "data": "glove-6B-50d x wordfreq-large"},
                 metrics=res)
    _plot_glove(res, out / "glove-static.png")
    S = res["scores"]
    det = "deterministic (1 run is the spread)"
    claims = []
    for task in ("lee", "wordsim353", "simlex999"):
        zw, uw, raw = S["zipfian_whitening"][task], S["uniform_whitening"][task], S["raw"][task]
        claims.append(Claim("Table 1", f"{task} Spearman: Zipfian whitening vs uniform whitening / raw",
                            "ZW > UW and ZW > raw", {"zipfian": round(zw, 4), "uniform": round(uw, 4), "raw": round(raw, 4)},
                            holds=zw > uw and zw > raw,
                            note=f"GloVe 6B 50d, p from wordfreq (paper: GloVe-840B, enwiki); {det}"))
        off = OFFICIAL_ON_OUR_DATA[task]["zipfian_whitening"]
        claims.append(Claim("notes (e)", f"{task} Spearman of Zipfian whitening: official code on our data vs ours",
                            off, round(zw, 4), holds=abs(zw - off) <= OFFICIAL_TOLERANCE,
                            note=f"delta {zw - off:+.4f}; gap from tokenisation (regex vs NLTK, Lee only) and the "
                                 "official float32 mean; same vocabulary and p"))
    best_other = max(v["mean"] for k, v in S.items() if k != "zipfian_whitening")
    claims.append(Claim("Table 1", "mean Spearman (3 tasks): Zipfian whitening is the best method", "best",
                        {m: round(v["mean"], 4) for m, v in S.items()},
                        holds=S["zipfian_whitening"]["mean"] > best_other, note=det))
    sym = res["symmetry"]["zipfian_whitening"]
    claims.append(Claim("Sec. 3.2", "Zipfian sym1, sym2 after Zipfian whitening", 1.0,
                        {"sym1_zipf": round(sym["sym1_zipf"], 6), "sym2_zipf": round(sym["sym2_zipf"], 6)},
                        holds=min(sym["sym1_zipf"], sym["sym2_zipf"]) > 0.999, note=det))
    # Fig. 3, one claim per moment: does the Zipfian score rank the 6 word spaces by task score better than
    # the uniform score of the same moment?
    r = res["symmetry_vs_performance"]
    for k, what in ((1, "1st moment (centrality)"), (2, "2nd moment (isotropy)")):
        z, u = r[f"sym{k}_zipf"], r[f"sym{k}_uniform"]
        claims.append(Claim("Fig. 3", f"Spearman(sym{k}, mean task score) over 6 word spaces, {what}: Zipfian vs uniform",
                            "Zipfian > uniform", {"zipfian": round(z, 3), "uniform": round(u, 3)}, holds=z > u,
                            note=f"6 spaces, {det}" + ("" if z > u else
                                 "; real disagreement at this scale: only the 1st-moment score supports Fig. 3")))
    return claims


#: Vocabulary sizes (most frequent words first) over which the norm/information correlation is reported.
NORM_TOP_K = (10_000, 50_000, None)


def norm_analysis(config: ZipfWhiteningConfig | None = None) -> dict:
    """Norms against information content ``-log p(w)`` under raw / uniform / Zipfian whitening.

    Reports Spearman over the top-k most frequent words (k in :data:`NORM_TOP_K`, ``None`` = all) and
    the mean norm per decade of p.
    """
    cfg = config or ZipfWhiteningConfig()
    vectors, words, p = load_glove_wordfreq(cfg.wordlist)
    info = -np.log(p)
    order = np.argsort(-p, kind="stable")
    edges = np.arange(np.floor(np.log10(p.min())), 0)  # decades of p
    decade = np.digitize(np.log10(p), edges)
    out = {"norms": {}, "spearman_norm_vs_info": {}, "mean_norm_per_decade": {},
           "decades": [f"1e{int(e)}" for e in edges]}
    for m in ("raw", "uniform_whitening", "zipfian_whitening"):
        table = make_embedder(m, vectors, words, p, cfg).table_
        norms = np.linalg.norm(table, axis=1)
        out["norms"][m] = norms
        out["spearman_norm_vs_info"][m] = {
            f"top{k}" if k else "all": spearman(norms[order[:k]], info[order[:k]]) for k in NORM_TOP_K}
        out["mean_norm_per_decade"][m] = [float(norms[decade == b].mean()) if (decade == b).any() else None
                                          for b in range(1, len(edges) + 1)]
    out["log10_p"] = np.log10(p)
    return out


@reproduction("norms", "After Zipfian whitening, rare words have larger norms (Sec. 6)")
def norms(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    res = norm_analysis()
    rho = res["spearman_norm_vs_info"]
    write_record(out, "norms.data", config={"data": "glove-6B-50d x wordfreq-large", "top_k": list(NORM_TOP_K)},
                 metrics={k: res[k] for k in ("spearman_norm_vs_info", "mean_norm_per_decade", "decades")})
    lp = res["log10_p"]
    idx = np.random.default_rng(seed).choice(len(lp), size=min(len(lp), 30000), replace=False)  # plot sample only
    with figure(out / "norms.png", ncols=3, figsize=(13, 3.8), sharex=True) as axes:
        for ax, (m, nrm) in zip(axes, res["norms"].items()):
            ax.hexbin(lp[idx], nrm[idx], gridsize=60, bins="log", cmap="viridis")
            centers = [float(d[2:]) + 0.5 for d in res["decades"]]
            ax.plot(centers, res["mean_norm_per_decade"][m], "r-o", ms=3, label="mean per decade")
            ax.set_title(f"{m} (rho top50k={rho[m]['top50000']:.2f})", fontsize=9)
            ax.set_xlabel("log10 p(w)")
        axes[0].set_ylabel("||w||")
    z = rho["zipfian_whitening"]
    return [
        Claim("Sec. 6", "Spearman(||w~||, -log p(w)) after Zipfian whitening, 50k most frequent words",
              "> 0 (rare words: larger norms)", round(z["top50000"], 4), holds=z["top50000"] > 0.2,
              note=f"top 10k {z['top10000']:.3f}; all 228k {z['all']:.3f} (the norm plateaus below p ~ 1e-7)"),
        Claim("Sec. 6", "norm/information Spearman (50k words): Zipfian vs uniform whitening and raw",
              "Zipfian strongest", {k: round(v["top50000"], 4) for k, v in rho.items()},
              holds=z["top50000"] > max(rho["uniform_whitening"]["top50000"], rho["raw"]["top50000"]),
              note="deterministic (1 run is the spread)"),
    ]


def evaluate_minilm(config: ZipfWhiteningConfig | None = None, layers: tuple[str, ...] = ("last",)) -> dict:
    """Lee-document Spearman of MiniLM mean pooling: raw, and token/type-prior centering/whitening."""
    from papercommon.data import lee_documents, load_minilm

    from zipf_whitening.contextual import TokenWhitening, encode_tokens

    cfg = config or ZipfWhiteningConfig()
    docs, sims = lee_documents()
    model, tok = load_minilm()
    out: dict = {}
    for layer in layers:
        batch = encode_tokens(model, tok, docs, layers=layer, max_length=cfg.max_length, batch_size=cfg.batch_size,
                              progress=True)
        res = {"n_tokens": int(len(batch.ids)),
               "raw": lee_spearman(TokenWhitening(model, tok, transform=None).fit_embed(batch), sims)}
        for transform in ("centering", "whitening"):
            for prior in ("token", "type"):
                tw = TokenWhitening(model, tok, prior=prior, transform=transform, eps=cfg.eps)
                res[f"{prior}_{transform}"] = lee_spearman(tw.fit_embed(batch), sims)
        out[layer] = res
    return out


@reproduction("minilm-tokens", "MiniLM token-level (Zipfian) vs type-level (pseudo-uniform) whitening on Lee docs (Sec. 5)")
def minilm_tokens(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    cfg = ZipfWhiteningConfig()
    layers = ("last",) if quick else ("last", "first_last")
    res = evaluate_minilm(cfg, layers)
    write_record(out, "minilm-tokens.data", config={**cfg.to_dict(), "layers": list(layers),
                                                    "model": "all-MiniLM-L6-v2",
                                                    "fit_on": "the 50 Lee documents' own tokens"}, metrics=res)
    claims = []
    for layer, r in res.items():
        claims.append(Claim("Table 3", f"Lee Spearman, MiniLM {layer}: token-level (Zipfian) vs type-level whitening",
                            "token > type", {"token": r["token_whitening"], "type": r["type_whitening"]},
                            holds=r["token_whitening"] > r["type_whitening"],
                            note="paper: BERT/RoBERTa on STS; MiniLM is contrastively fine-tuned"))
        claims.append(Claim("Table 3", f"Lee Spearman, MiniLM {layer}: token-level whitening vs raw mean pooling",
                            "whitening > raw", {"token_whitening": r["token_whitening"], "raw": r["raw"]},
                            holds=r["token_whitening"] > r["raw"], note=f"{r['n_tokens']} tokens, d = 384"))
    return claims


@reproduction("sts", "STS12-16, STS-B, SICK-R through Hugging Face datasets (needs a network)")
def sts(quick: bool, out: Path, seed: int = 0) -> list[Claim]:
    from zipf_whitening.sts import STS_TASKS, STSUnavailableError, evaluate_sts

    tasks = ("stsb",) if quick else STS_TASKS
    try:
        res = evaluate_sts(tasks)
    except STSUnavailableError as e:
        return [Claim("Table 1", "STS Spearman x100 (GloVe, 7 tasks)", PAPER_GLOVE840B_STS_AVG, "skipped",
                      holds=None, note=f"skipped: {e}")]
    write_record(out, "sts.data", config={"tasks": list(tasks)}, metrics=res)
    avg = res["average"]
    return [Claim("Table 1", f"STS Spearman x100, average over {len(tasks)} task(s): Zipfian > uniform whitening",
                  PAPER_GLOVE840B_STS_AVG["zipfian_whitening"], avg,
                  holds=avg["zipfian_whitening"] > avg["uniform_whitening"], note="GloVe 6B 50d (paper: 840B 300d)")]


REPRODUCTIONS = [glove_static, norms, minilm_tokens, sts]
