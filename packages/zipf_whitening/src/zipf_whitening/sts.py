"""The paper's STS benchmarks (STS12-16, STS-B, SICK-R; test splits) through Hugging Face ``datasets``.

The MTEB copies are used (``mteb/<task>``, columns ``sentence1``, ``sentence2``, ``score``), as the
official code evaluates through MTEB. They need the ``datasets`` package and a network (or a filled
HF cache); without them :class:`STSUnavailableError` says what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zipf_whitening.config import ZipfWhiteningConfig
from zipf_whitening.embedding import load_glove_wordfreq, make_embedder
from zipf_whitening.evaluation import row_cosine

STS_TASKS = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr")
_HF_NAMES = {"sts12": "mteb/sts12-sts", "sts13": "mteb/sts13-sts", "sts14": "mteb/sts14-sts",
             "sts15": "mteb/sts15-sts", "sts16": "mteb/sts16-sts", "stsb": "mteb/stsbenchmark-sts",
             "sickr": "mteb/sickr-sts"}
STS_METHODS = ("raw", "uniform_centering", "zipfian_centering", "uniform_whitening", "zipfian_whitening", "abtt",
               "sif", "usif")


class STSUnavailableError(RuntimeError):
    """The STS data cannot be loaded here (no ``datasets`` package, or no network / cache)."""


def load_sts(task: str) -> tuple[list[str], list[str], np.ndarray]:
    """``(sentences1, sentences2, gold scores)`` of one task's test split."""
    if task not in _HF_NAMES:
        raise ValueError(f"unknown STS task {task!r}; expected one of {STS_TASKS}")
    try:
        import datasets
    except ImportError as e:
        raise STSUnavailableError("the STS benchmarks need Hugging Face datasets: `pip install datasets` "
                                  f"and a network to download {_HF_NAMES[task]}") from e
    try:
        ds = datasets.load_dataset(_HF_NAMES[task], split="test")
    except Exception as e:  # noqa: BLE001 - any hub/network failure means: not available here
        raise STSUnavailableError(f"could not load {_HF_NAMES[task]} (needs a network or a local HF cache): "
                                  f"{type(e).__name__}: {e}") from e
    return list(ds["sentence1"]), list(ds["sentence2"]), np.asarray(ds["score"], dtype=np.float64)


def evaluate_sts(tasks: Sequence[str] = STS_TASKS, methods: Sequence[str] = STS_METHODS,
                 config: ZipfWhiteningConfig | None = None) -> dict:
    """Spearman x100 of cosine vs gold for every task and method, and the average over tasks."""
    from papercommon.metrics import spearman

    data = {t: load_sts(t) for t in tasks}  # fail early, before the embeddings are built
    cfg = config or ZipfWhiteningConfig()
    vectors, words, p = load_glove_wordfreq(cfg.wordlist)
    res: dict = {"per_task": {t: {} for t in tasks}}
    for m in methods:
        emb = make_embedder(m, vectors, words, p, cfg)
        for t, (s1, s2, gold) in data.items():
            E = emb.embed(s1 + s2)  # one batch: SIF/uSIF fit their common directions on the task
            res["per_task"][t][m] = 100 * spearman(row_cosine(E[:len(s1)], E[len(s1):]), gold)
    res["average"] = {m: float(np.mean([res["per_task"][t][m] for t in tasks])) for m in methods}
    return res
