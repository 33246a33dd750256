"""Zipfian whitening (Yokoi, Bao, Kurita, Shimodaira, NeurIPS 2024) as scikit-learn transformers.

Whiten word embeddings under their word-frequency prior p: ``ZipfianWhitening().fit(W, sample_weight=p)``,
measure symmetry with :func:`symmetry_scores`, embed documents with :class:`DocumentEmbedder` and
whiten contextual token embeddings with :class:`TokenWhitening`.
"""

from zipf_whitening.config import ZipfWhiteningConfig
from zipf_whitening.embedding import METHODS, DocumentEmbedder, load_glove_wordfreq, make_embedder, tokenize
from zipf_whitening.estimators import (
    SIF,
    USIF,
    AllButTheTop,
    UniformCentering,
    UniformWhitening,
    ZipfianCentering,
    ZipfianWhitening,
)
from zipf_whitening.symmetry import average_cosine, isoscore, sym1, sym2, symmetry_scores

__version__ = "0.1.0"

__all__ = [
    "SIF", "USIF", "METHODS", "AllButTheTop", "DocumentEmbedder", "UniformCentering", "UniformWhitening",
    "ZipfWhiteningConfig", "ZipfianCentering", "ZipfianWhitening", "average_cosine", "isoscore",
    "load_glove_wordfreq", "make_embedder", "symmetry_scores", "sym1", "sym2", "tokenize",
]
