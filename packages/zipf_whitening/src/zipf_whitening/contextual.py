"""Token-level whitening of a transformer encoder (the paper's contextual experiments, Sec. 5).

For a contextual encoder the "words" are token occurrences. WhiteningBERT fits the mean and
covariance over *all token occurrences* of the evaluated texts, giving every occurrence the same
weight; since frequent types occur often, that prior over types is the empirical (Zipfian) one: the
paper calls it *implicitly Zipfian*. The *pseudo-uniform* alternative weights an occurrence of type t
by ``1 / (count(t) |V_batch|)`` so that every type gets the same total weight (official
``SimCSE/evaluation.py``, ``WhiteningMatrixCalculator``). The paper finds the token (Zipfian) prior
better; :class:`TokenWhitening` implements both.

Example:
    >>> from papercommon.data import load_minilm
    >>> model, tok = load_minilm()
    >>> tw = TokenWhitening(model, tok, prior="token")
    >>> E = tw.fit_embed(["A man plays a guitar.", "Someone is playing an instrument."])  # (2, 384)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from zipf_whitening.estimators import ZipfianCentering, ZipfianWhitening

__all__ = ["TokenBatch", "encode_tokens", "token_prior_weights", "TokenWhitening"]

_PRIORS = ("token", "type")
_TRANSFORMS = ("whitening", "centering", None)


@dataclass
class TokenBatch:
    """Token vectors of a list of texts, flattened.

    Attributes:
        ids: (N,) token ids of every occurrence.
        vectors: (N, d) float32 contextual vectors.
        doc: (N,) index of the text each occurrence belongs to.
        n_docs: number of texts.
    """

    ids: np.ndarray
    vectors: np.ndarray
    doc: np.ndarray
    n_docs: int


@torch.no_grad()
def encode_tokens(model, tokenizer, texts: Sequence[str], *, layers: str = "last", max_length: int = 512,
                  batch_size: int = 16, skip_special: bool = False, progress: bool = False) -> TokenBatch:
    """Run the encoder and collect one vector per (non-padding) token occurrence.

    Args:
        layers: ``"last"`` (the last hidden state) or ``"first_last"`` (mean of the first and last
            layers' outputs, SimCSE's ``avg_first_last``).
        skip_special: drop [CLS]/[SEP]-like tokens (the official pooling keeps them).
    """
    if layers not in ("last", "first_last"):
        raise ValueError(f"layers must be 'last' or 'first_last', got {layers!r}")
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty sequence of strings")
    device = next(model.parameters()).device
    ids, vecs, doc = [], [], []
    starts = range(0, len(texts), batch_size)
    for s in tqdm(starts, desc="encode", disable=not progress):
        enc = tokenizer(list(texts[s:s + batch_size]), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask")
        out = model(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=layers == "first_last")
        H = out.last_hidden_state if layers == "last" else (out.hidden_states[1] + out.hidden_states[-1]) / 2
        keep = enc["attention_mask"].bool()
        if skip_special:
            keep &= ~special.bool()
        keep = keep.to(H.device)
        H = H.float()
        for j in range(H.shape[0]):
            m = keep[j]
            ids.append(enc["input_ids"][j][m.cpu()].numpy())
            vecs.append(H[j][m].cpu().numpy())
            doc.append(np.full(int(m.sum()), s + j))
    return TokenBatch(np.concatenate(ids), np.concatenate(vecs), np.concatenate(doc), len(texts))


def token_prior_weights(ids: np.ndarray, prior: str) -> np.ndarray | None:
    """Per-occurrence weights: ``"token"`` -> ``None`` (uniform over occurrences, implicitly Zipfian);
    ``"type"`` -> ``1 / (count(type) |V_batch|)`` (pseudo-uniform: every type weighs 1/|V_batch|)."""
    if prior == "token":
        return None
    if prior != "type":
        raise ValueError(f"prior must be one of {_PRIORS}, got {prior!r}")
    types, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return 1.0 / (counts[inverse] * len(types))


class TokenWhitening:
    """Sentence embeddings = mean over tokens of whitened (or centred) contextual token vectors.

    Args:
        model, tokenizer: a Hugging Face encoder and its tokenizer (e.g. ``papercommon.data.load_minilm()``).
        prior: ``"token"`` (fit on occurrences: implicitly Zipfian) or ``"type"`` (pseudo-uniform).
        transform: ``"whitening"``, ``"centering"`` or ``None`` (raw mean pooling).
        layers, max_length, batch_size, skip_special: see :func:`encode_tokens`.
        n_components, eps: passed to :class:`~zipf_whitening.ZipfianWhitening`.

    Paper: Yokoi et al., NeurIPS 2024, Sec. 5 ("uniform" = token-level, "pseudo-uniform" = type-level).
    """

    def __init__(self, model, tokenizer, *, prior: str = "token", transform: str | None = "whitening",
                 layers: str = "last", max_length: int = 512, batch_size: int = 16, skip_special: bool = False,
                 n_components: int | None = None, eps: float = 1e-10):
        if prior not in _PRIORS:
            raise ValueError(f"prior must be one of {_PRIORS}, got {prior!r}")
        if transform not in _TRANSFORMS:
            raise ValueError(f"transform must be one of {_TRANSFORMS}, got {transform!r}")
        self.model, self.tokenizer, self.prior, self.transform = model, tokenizer, prior, transform
        self.layers, self.max_length, self.batch_size, self.skip_special = layers, max_length, batch_size, skip_special
        self.n_components, self.eps = n_components, eps

    def encode(self, texts: Sequence[str], progress: bool = False) -> TokenBatch:
        return encode_tokens(self.model, self.tokenizer, texts, layers=self.layers, max_length=self.max_length,
                             batch_size=self.batch_size, skip_special=self.skip_special, progress=progress)

    def fit(self, texts_or_batch: Sequence[str] | TokenBatch) -> TokenWhitening:
        """Fit the token-level statistics on the occurrences of ``texts`` (or an encoded batch)."""
        batch = texts_or_batch if isinstance(texts_or_batch, TokenBatch) else self.encode(texts_or_batch)
        if self.transform is None:
            self.estimator_ = None
            return self
        w = token_prior_weights(batch.ids, self.prior)
        est = ZipfianWhitening(self.n_components, eps=self.eps) if self.transform == "whitening" else ZipfianCentering()
        # float64: LayerNorm outputs have near-null directions whose whitening amplifies float32 error
        self.estimator_ = est.fit(batch.vectors.astype(np.float64), sample_weight=w)
        return self

    def embed(self, texts_or_batch: Sequence[str] | TokenBatch) -> np.ndarray:
        """(n_texts, d') mean of the transformed token vectors of each text."""
        if not hasattr(self, "estimator_"):
            raise RuntimeError("TokenWhitening is not fitted: call .fit(texts) first")
        batch = texts_or_batch if isinstance(texts_or_batch, TokenBatch) else self.encode(texts_or_batch)
        X = batch.vectors if self.estimator_ is None else self.estimator_.transform(batch.vectors.astype(np.float64))
        X = np.asarray(X, dtype=np.float64)
        sums = np.zeros((batch.n_docs, X.shape[1]))
        np.add.at(sums, batch.doc, X)
        counts = np.bincount(batch.doc, minlength=batch.n_docs)
        return sums / np.maximum(counts, 1)[:, None]

    def fit_embed(self, texts_or_batch: Sequence[str] | TokenBatch) -> np.ndarray:
        """Fit on the texts' own tokens (as WhiteningBERT and the paper do) and embed them."""
        batch = texts_or_batch if isinstance(texts_or_batch, TokenBatch) else self.encode(texts_or_batch)
        return self.fit(batch).embed(batch)
