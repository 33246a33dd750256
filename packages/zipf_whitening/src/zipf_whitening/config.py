"""Evaluation settings of the paper's experiments (defaults = the paper's / official code's values)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

_LAYERS = ("last", "first_last")
_PRIORS = ("token", "type")


@dataclass(frozen=True, kw_only=True)
class ZipfWhiteningConfig:
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

    def __post_init__(self) -> None:
        if not 0 <= self.eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {self.eps}")
        if not self.sif_a > 0:
            raise ValueError(f"sif_a must be > 0, got {self.sif_a}")
        for name in ("sif_components", "abtt_components", "usif_n", "usif_components", "max_length", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.wordlist not in ("small", "large", "best"):
            raise ValueError(f"wordlist must be one of 'small', 'large', 'best', got {self.wordlist!r}")
        if self.layers not in _LAYERS:
            raise ValueError(f"layers must be one of {_LAYERS}, got {self.layers!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZipfWhiteningConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**d)
