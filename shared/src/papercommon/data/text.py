"""Offline text corpora, a character tokenizer and language-model batches."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import torch

from papercommon.data._common import DataUnavailableError, cache_dir, gensim_data

_DOWNLOADS = {
    "tinyshakespeare": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    "wikitext2": "https://huggingface.co/datasets/Salesforce/wikitext/resolve/main/wikitext-2-raw-v1/train-00000-of-00001.parquet",
}
TEXT_CORPORA = ("lee", "pydoc", *_DOWNLOADS)


def _download(name: str) -> str:
    path = cache_dir("text") / f"{name}.{'parquet' if name == 'wikitext2' else 'txt'}"
    if not path.exists():
        try:
            with urllib.request.urlopen(_DOWNLOADS[name], timeout=30) as r:
                path.write_bytes(r.read())
        except (urllib.error.URLError, OSError) as e:
            raise DataUnavailableError(
                f"text corpus {name!r} needs a network download from {_DOWNLOADS[name]} ({e}); "
                f"put a copy at {path}, or use an offline corpus: 'lee' or 'pydoc'") from e
    if name == "wikitext2":
        import pyarrow.parquet as pq

        return "".join(pq.read_table(path).column("text").to_pylist())
    return path.read_text()


def text_corpus(name: str) -> str:
    """A text corpus as one string.

    Args:
        name: ``"lee"`` (gensim's 300 Lee background news documents, 360 KB, offline), ``"pydoc"`` (Python's
            reference documentation from ``pydoc_data.topics``, 465 KB, offline), ``"tinyshakespeare"`` or
            ``"wikitext2"`` (the train split; downloaded once into ``$PAPERCOMMON_CACHE``, needs a network).
    """
    if name == "lee":
        return gensim_data("lee_background.cor").read_text(encoding="latin-1")
    if name == "pydoc":
        from pydoc_data.topics import topics

        return "\n\n".join(topics[k] for k in sorted(topics))
    if name in _DOWNLOADS:
        return _download(name)
    raise ValueError(f"unknown text corpus {name!r}; expected one of {TEXT_CORPORA}")


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def word_tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits and inner apostrophes)."""
    return _WORD.findall(text.lower())


class CharTokenizer:
    """A character-level tokenizer over the characters of a text (sorted, so it is deterministic).

    Example:
        >>> tok = CharTokenizer("hello world")
        >>> tok.decode(tok.encode("hello"))
        'hello'
    """

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        try:
            return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the tokenizer's vocabulary of "
                             f"{self.vocab_size} characters") from None

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def lm_batch(ids: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (input, target) blocks for next-token training, as in nanoGPT's ``get_batch``.

    Args:
        ids: a 1-D token stream.
        block_size: tokens per block.
        batch_size: blocks per batch.
        generator: for reproducible offsets.

    Returns:
        ``x`` and ``y`` of shape ``[batch_size, block_size]``, ``y`` shifted by one.
    """
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D token stream, got shape {tuple(ids.shape)}")
    if len(ids) <= block_size:
        raise ValueError(f"need more than block_size={block_size} tokens, got {len(ids)}")
    ix = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    offsets = ix[:, None] + torch.arange(block_size)
    return ids[offsets], ids[offsets + 1]
