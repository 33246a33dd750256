"""Sentence / document embeddings from static word vectors: tokenise, transform, average.

The paper's sentence embedding (Sec. 4, official ``src/modeling.py`` pooling mode "whitening") is the
plain mean of the transformed vectors of a sentence's in-vocabulary words, compared by cosine. The
whitening statistics are fitted once on the whole vocabulary with the word-frequency prior.

Example:
    >>> from zipf_whitening import DocumentEmbedder, ZipfianWhitening, load_glove_wordfreq
    >>> vectors, words, p = load_glove_wordfreq()
    >>> emb = DocumentEmbedder(vectors, words, p, transform=ZipfianWhitening()).fit()
    >>> E = emb.embed(["A cat sat on the mat.", "Stocks fell sharply on Monday."])  # (2, 50)
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from zipf_whitening.config import ZipfWhiteningConfig
from zipf_whitening.estimators import (
    SIF,
    USIF,
    AllButTheTop,
    UniformCentering,
    UniformWhitening,
    ZipfianCentering,
    ZipfianWhitening,
)

__all__ = ["tokenize", "load_glove_wordfreq", "load_glove_400k", "DocumentEmbedder", "METHODS", "make_embedder"]

_CONTRACTIONS = re.compile(r"n't\b")
_CLITIC = re.compile(r"'(s|re|ve|ll|d|m)\b")
_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """The official preprocessing without NLTK (``src/eval_utils.py``).

    Lower-case; ``n't`` -> ``not``; clitics (``'s``, ``'re``, ...) become their own words; hyphenated
    words are split; punctuation is dropped. ``"Don't re-read John's e-mail!"`` ->
    ``['do', 'not', 're', 'read', 'john', 's', 'e', 'mail']``.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    text = _CONTRACTIONS.sub(" not", text.lower().replace("\u2019", "'"))
    text = _CLITIC.sub(r" \1", text)
    return _TOKEN.findall(text)


def load_glove_wordfreq(wordlist: str = "large", lang: str = "en") -> tuple[np.ndarray, list[str], np.ndarray]:
    """GloVe 6B 50-d restricted to wordfreq's list, with p(w) renormalised over the shared vocabulary.

    This is the offline stand-in of the paper's setting (GloVe-840B with the enwiki_vocab_min200
    counts of SIF/uSIF): words without a frequency are dropped from the statistics and from the
    sentences, as in the official code.

    Returns:
        ``vectors`` float32 (V, 50), ``words`` (V,), ``p`` float64 (V,) summing to 1 (V = 227,765
        for the "large" list).
    """
    from papercommon.data import glove, word_frequencies

    vectors, words = glove()
    freq = word_frequencies(lang, wordlist)
    keep = np.array([w in freq for w in words])
    kept_words = [w for w, k in zip(words, keep) if k]
    p = np.array([freq[w] for w in kept_words], dtype=np.float64)
    return np.ascontiguousarray(vectors[keep]), kept_words, p / p.sum()


def load_glove_400k() -> tuple[np.ndarray, np.ndarray]:
    """All 400k GloVe 6B 50-d vectors (float32) and a prior over them: wordfreq's p where the word has
    one, the smallest wordfreq p elsewhere (renormalised). The benchmark data of the fit speed."""
    from papercommon.data import glove, word_frequencies

    vectors, words = glove()
    freq = word_frequencies("en", "large")
    floor = min(freq.values())
    p = np.array([freq.get(w, floor) for w in words], dtype=np.float64)
    return vectors, p / p.sum()


def _is_fitted(est: Any) -> bool:
    try:
        check_is_fitted(est)
    except NotFittedError:
        return False
    return True


def _fit_accepts_weights(est: Any) -> bool:
    return "sample_weight" in inspect.signature(est.fit).parameters


class DocumentEmbedder:
    """Mean of (transformed, optionally re-weighted) word vectors, with OOV handling.

    Pipeline per document: ``tokenizer(text)`` -> drop words outside the vocabulary -> look up the
    transformed vectors ``transform(W)`` -> weighted mean (weights ``word_weights`` or 1) -> optional
    sentence-level ``post`` transformer (SIF/uSIF common-component removal), refitted on every batch
    passed to :meth:`embed`, as in the original SIF (the directions are dataset-specific).

    Args:
        vectors: (V, d) word vectors.
        words: the V words (row order of ``vectors``).
        word_prob: (V,) unigram probabilities (required by weighted fits and SIF/uSIF weights).
        transform: a word-level transformer (``ZipfianWhitening()``, ...) fitted by :meth:`fit` on
            all V vectors, or an already fitted one (used as is); ``None`` = raw vectors.
        weighted_fit: pass ``word_prob`` as ``sample_weight`` to ``transform.fit``; ``None`` (default)
            does so whenever ``fit`` accepts ``sample_weight``.
        word_weights: per-word pooling weights: ``"sif"`` / ``"usif"`` (from ``post``'s
            ``word_weights(word_prob)``), an array (V,), or ``None`` (plain mean).
        post: a sentence-level transformer (``SIF()``, ``USIF()``) or ``None``.
        normalize_words: unit-normalise the word vectors before pooling (uSIF does, Sec. 4).
        tokenizer: ``str -> list[str]`` (default :func:`tokenize`).
        on_empty: documents with no known word: ``"zero"`` (zero vector and a warning) or ``"raise"``.

    Paper: Yokoi et al., NeurIPS 2024, Sec. 4 (sentence embeddings as averaged whitened word vectors).
    """

    def __init__(
        self, vectors: np.ndarray, words: Sequence[str], word_prob: np.ndarray | None = None, *,
        transform: Any = None, weighted_fit: bool | None = None, word_weights: str | np.ndarray | None = None,
        post: Any = None, normalize_words: bool = False, tokenizer: Callable[[str], list[str]] = tokenize,
        on_empty: str = "zero",
    ):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"vectors must be (len(words), d) = ({len(words)}, d), got {vectors.shape}")
        if not np.issubdtype(vectors.dtype, np.number) or not np.isfinite(vectors).all():
            bad = int((~np.isfinite(vectors)).sum()) if np.issubdtype(vectors.dtype, np.number) else "non-numeric"
            raise ValueError(f"vectors: expected finite numbers, got {bad} NaN or inf entries")
        if word_prob is not None:
            word_prob = np.asarray(word_prob, dtype=np.float64)
            if word_prob.shape != (len(words),):
                raise ValueError(f"word_prob must have shape ({len(words)},), got {word_prob.shape}")
            if not np.isfinite(word_prob).all() or (word_prob < 0).any() or word_prob.sum() <= 0:
                raise ValueError("word_prob: expected finite non-negative weights with a positive sum, got "
                                 f"{int((~np.isfinite(word_prob)).sum())} NaN/inf and {int((word_prob < 0).sum())} "
                                 f"negative value(s), sum {word_prob.sum()!r}")
        if on_empty not in ("zero", "raise"):
            raise ValueError(f"on_empty must be 'zero' or 'raise', got {on_empty!r}")
        if isinstance(word_weights, str) and word_weights not in ("sif", "usif"):
            raise ValueError(f"word_weights must be 'sif', 'usif', an array or None, got {word_weights!r}")
        self.vectors, self.words, self.word_prob = vectors, list(words), word_prob
        self.transform, self.weighted_fit, self.word_weights = transform, weighted_fit, word_weights
        self.post, self.normalize_words, self.tokenizer, self.on_empty = post, normalize_words, tokenizer, on_empty
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError(f"words contain {len(self.words) - len(self.index)} duplicate(s)")

    # ---------------------------------------------------------------------------------------------
    def fit(self) -> DocumentEmbedder:
        """Fit the word-level transform on all V vectors and cache the transformed table."""
        table = self.vectors
        if self.transform is not None:
            est = self.transform
            if not _is_fitted(est):
                est = clone(est)
                weighted = _fit_accepts_weights(est) if self.weighted_fit is None else self.weighted_fit
                if weighted:
                    if self.word_prob is None:
                        raise ValueError(f"{type(est).__name__} is fitted with word_prob, which was not given")
                    est.fit(self.vectors, sample_weight=self.word_prob)
                else:
                    est.fit(self.vectors)
            self.transform_ = est
            table = est.transform(self.vectors)
        table = np.asarray(table, dtype=np.float64)
        if self.normalize_words:
            norms = np.linalg.norm(table, axis=1, keepdims=True)
            table = table / np.where(norms > 0, norms, 1.0)
        self.table_ = table
        self.pool_weights_ = self._pool_weights()
        return self

    def _pool_weights(self) -> np.ndarray | None:
        ww = self.word_weights
        if ww is None:
            return None
        if isinstance(ww, str):
            if self.word_prob is None:
                raise ValueError(f"word_weights={ww!r} needs word_prob")
            maker = self.post if self.post is not None and hasattr(self.post, "word_weights") else (
                SIF() if ww == "sif" else USIF())
            return np.asarray(maker.word_weights(self.word_prob), dtype=np.float64)
        ww = np.asarray(ww, dtype=np.float64)
        if ww.shape != (len(self.words),):
            raise ValueError(f"word_weights must have shape ({len(self.words)},), got {ww.shape}")
        return ww

    def _check_fitted(self) -> None:
        if not hasattr(self, "table_"):
            raise NotFittedError("DocumentEmbedder is not fitted: call .fit() first")

    def bag_of_words(self, docs: Sequence[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        """(n_docs, V) sparse counts of in-vocabulary words and the OOV count per document."""
        if isinstance(docs, str):
            raise TypeError("docs must be a sequence of strings, got a single str")
        rows, cols, oov = [], [], np.zeros(len(docs), dtype=np.int64)
        for i, doc in enumerate(docs):
            for tok in self.tokenizer(doc):
                j = self.index.get(tok)
                if j is None:
                    oov[i] += 1
                else:
                    rows.append(i)
                    cols.append(j)
        A = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(self.words)))
        A.sum_duplicates()
        return A, oov

    def embed(self, docs: Sequence[str]) -> np.ndarray:
        """Embed documents: (n_docs, d') float64. Fits ``post`` (if any) on this batch."""
        self._check_fitted()
        A, _ = self.bag_of_words(docs)
        n_tok = np.asarray(A.sum(axis=1)).ravel()
        empty = n_tok == 0
        if empty.any():
            msg = f"{int(empty.sum())} of {len(docs)} document(s) contain no in-vocabulary word"
            if self.on_empty == "raise":
                raise ValueError(msg)
            warnings.warn(msg + "; they are embedded as zero vectors", stacklevel=2)
        if self.pool_weights_ is not None:
            A = A @ sp.diags(self.pool_weights_)
        E = np.asarray(A @ self.table_) / np.maximum(n_tok, 1)[:, None]  # (n, d') mean over tokens
        if self.post is not None:
            self.post_ = clone(self.post).fit(E)
            E = self.post_.transform(E)
        return E

    def embed_words(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of single words (as one-word documents) and a mask of which words are known."""
        self._check_fitted()
        known = np.array([w.lower() in self.index for w in words])
        idx = [self.index[w.lower()] for w, k in zip(words, known) if k]
        E = self.table_[idx]
        if self.pool_weights_ is not None:
            E = E * self.pool_weights_[idx, None]
        if self.post is not None:
            self.post_ = clone(self.post).fit(E)
            E = self.post_.transform(E)
        return E, known


#: The compared methods (Table 1 of the paper) in display order.
METHODS = ("raw", "uniform_centering", "zipfian_centering", "uniform_whitening", "zipfian_whitening", "abtt",
           "sif", "usif")


def make_embedder(method: str, vectors: np.ndarray, words: Sequence[str], word_prob: np.ndarray,
                  config: ZipfWhiteningConfig | None = None, **kwargs: Any) -> DocumentEmbedder:
    """A fitted :class:`DocumentEmbedder` for one of :data:`METHODS` with the paper's settings."""
    cfg = config or ZipfWhiteningConfig()
    specs: dict[str, dict[str, Any]] = {
        "raw": {},
        "uniform_centering": {"transform": UniformCentering()},
        "zipfian_centering": {"transform": ZipfianCentering()},
        "uniform_whitening": {"transform": UniformWhitening(eps=cfg.eps)},
        "zipfian_whitening": {"transform": ZipfianWhitening(eps=cfg.eps)},
        "abtt": {"transform": AllButTheTop(cfg.abtt_components), "weighted_fit": False},
        "sif": {"word_weights": "sif", "post": SIF(a=cfg.sif_a, n_components=cfg.sif_components)},
        "usif": {"word_weights": "usif", "post": USIF(n=cfg.usif_n, n_components=cfg.usif_components),
                 "normalize_words": True},
    }
    if method not in specs:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    return DocumentEmbedder(vectors, words, word_prob, **{**specs[method], **kwargs}).fit()
