"""Similarity benchmarks: Spearman correlation between cosine similarities and human scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from papercommon.metrics import spearman

__all__ = ["cosine_matrix", "row_cosine", "lee_spearman", "word_similarity_spearman"]


def _unit(E: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(E, axis=1, keepdims=True)
    return E / np.where(n > 0, n, 1.0)


def cosine_matrix(E: np.ndarray) -> np.ndarray:
    """All pairwise cosines of the rows of E (zero rows give cosine 0)."""
    U = _unit(np.asarray(E, dtype=np.float64))
    return U @ U.T


def row_cosine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosine between matching rows of A and B."""
    return np.sum(_unit(np.asarray(A, np.float64)) * _unit(np.asarray(B, np.float64)), axis=1)


def lee_spearman(E: np.ndarray, sims: np.ndarray) -> float:
    """Spearman between the 1,225 upper-triangle document cosines and the human similarities."""
    E, sims = np.asarray(E), np.asarray(sims)
    if E.shape[0] != sims.shape[0] or sims.shape[0] != sims.shape[1]:
        raise ValueError(f"need E (n, d) and sims (n, n); got {E.shape} and {sims.shape}")
    iu = np.triu_indices(E.shape[0], 1)
    return spearman(cosine_matrix(E)[iu], sims[iu])


def word_similarity_spearman(embed_words, pairs: Sequence[tuple[str, str, float]]) -> tuple[float, int]:
    """Spearman over the pairs whose two words are both known; returns ``(rho, n_pairs_used)``.

    Args:
        embed_words: ``list[str] -> (vectors of known words, known mask)`` (``DocumentEmbedder.embed_words``).
        pairs: ``(word1, word2, human score)`` triples.
    """
    vocab = sorted({w for a, b, _ in pairs for w in (a, b)})
    E, known = embed_words(vocab)
    row = {w: i for i, w in enumerate(w for w, k in zip(vocab, known) if k)}
    used = [(a, b, s) for a, b, s in pairs if a in row and b in row]
    if len(used) < 2:
        raise ValueError(f"only {len(used)} pair(s) have both words in the vocabulary")
    cos = row_cosine(E[[row[a] for a, _, _ in used]], E[[row[b] for _, b, _ in used]])
    return spearman(cos, [s for _, _, s in used]), len(used)
