"""Offline data loaders: text, images, word vectors and benchmarks, pretrained models.

Every loader returns plain tensors or arrays. Sources that need a network keep their real download
path and raise :class:`DataUnavailableError` naming what to install or fetch when it fails.
"""

from papercommon.data._common import DataUnavailableError, cache_dir
from papercommon.data.images import IMAGE_DATASETS, image_dataset
from papercommon.data.models import load_minilm, load_smollm2, minilm_path, smollm2_path
from papercommon.data.text import TEXT_CORPORA, CharTokenizer, lm_batch, text_corpus, word_tokenize
from papercommon.data.words import glove, lee_documents, simlex999, word_frequencies, wordsim353

__all__ = [
    "IMAGE_DATASETS", "TEXT_CORPORA", "CharTokenizer", "DataUnavailableError", "cache_dir", "glove",
    "image_dataset", "lee_documents", "lm_batch", "load_minilm", "load_smollm2", "minilm_path",
    "simlex999", "smollm2_path", "text_corpus", "word_frequencies", "word_tokenize", "wordsim353",
]
