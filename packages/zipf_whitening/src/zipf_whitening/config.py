"""Evaluation settings of the paper's experiments (defaults = the paper's / official code's values)."""

from __future__ import annotations

from dataclasses import dataclass

from papercommon.checks import check_choice, check_int, check_positive, check_range
from papercommon.config import Config

_LAYERS = ("last", "first_last")
_PRIORS = ("token", "type")


@dataclass(frozen=True, kw_only=True)
class ZipfWhiteningConfig(Config):
    """Hyper-parameters of the static and contextual evaluations.

    The transformers themselves (:mod:`zipf_whitening.estimators`) take their own constructor
    arguments, scikit-learn style; this config gathers the values the reproductions use.
    """

    # Relative rank tolerance of the whitening eigen-decomposition (ours; the official code has none).
    eps: float = 1e-10
    # SIF smoothing constant a (Arora et al. 2017, Sec. 4; official SIF.py default 1e-3).
    sif_a: float = 1e-3
    # Principal directions SIF removes from the sentence embeddings (Arora et al. 2017, Alg. 1: 1).
    sif_components: int = 1
    # Directions removed by all-but-the-top (official AllButTheTop(components_threshhold=3)).
    abtt_components: int = 3
    # uSIF expected sentence length n and common directions m (Ethayarajh 2018, Sec. 4: n=11, m=5).
    usif_n: int = 11
    usif_components: int = 5
    # wordfreq list giving p(w) (paper: enwiki_vocab_min200 counts; offline: wordfreq "large", 321k words).
    wordlist: str = "large"
    # Contextual encoder: which hidden states are averaged per token (SimCSE evaluation: "first_last";
    # all-MiniLM-L6-v2's own pooling: "last").
    layers: str = "last"
    # Maximum number of word pieces per text (MiniLM's position table holds 512).
    max_length: int = 512
    # Texts per forward pass.
    batch_size: int = 16

    def validate(self) -> None:
        check_range("eps", self.eps, 0.0, 1.0, inclusive=(True, False))
        check_positive("sif_a", self.sif_a)
        for name in ("sif_components", "abtt_components", "usif_n", "usif_components", "max_length", "batch_size"):
            check_int(name, getattr(self, name))
        check_choice("wordlist", self.wordlist, ("small", "large", "best"))
        check_choice("layers", self.layers, _LAYERS)
