"""The neural experiments (Sec. 6.2) at small scale on offline text: a character-level nanoGPT, a word-level
LSTM language model and a small T5 trained with span corruption.

The paper trains AWD-LSTM on Penn Treebank, nanoGPT on Shakespeare-char and T5 on C4; none of these is
available offline, so every model trains on the Lee news corpus of ``papercommon.data`` (the same text for all
methods, a held-out 10% for validation). For the networks l* = 0 and f* = 0 (Polyak), and there is no
best-iterate selection, as in the paper.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from papercommon.checks import check_choice, check_int
from papercommon.config import Config
from papercommon.data import CharTokenizer, lm_batch, text_corpus, word_tokenize

from polyak_clip.optim import OPTIMIZERS

TASKS = ("nanogpt", "lstm", "t5")
# The paper's grids for grid-tuned clipped SGD (Sec. 6.2 / Appendix), per task.
PAPER_GRIDS = {
    "lstm": {"lr": (100.0, 50.0, 10.0, 1.0, 0.1, 0.01), "clip": (0.5, 1.0, 2.0, 5.0, math.inf)},
    "nanogpt": {"lr": (1.0, 0.1, 0.01, 0.001, 0.0001), "clip": (1.0, 2.0, 5.0, 10.0, math.inf)},
    "t5": {"lr": (5.0, 1.0, 0.5, 0.1, 0.05), "clip": (1.0, 2.0, 3.0, math.inf)},
}
QUICK_GRIDS = {
    "lstm": {"lr": (10.0, 1.0), "clip": (1.0, math.inf)},
    "nanogpt": {"lr": (1.0, 0.1), "clip": (1.0, math.inf)},
    "t5": {"lr": (1.0, 0.1), "clip": (1.0, math.inf)},
}


@dataclass(frozen=True, kw_only=True)
class NeuralConfig(Config):
    """A small-scale neural run (Sec. 6.2 at CPU scale; the paper's own sizes are in the README)."""

    task: str = "nanogpt"  # "nanogpt" (Shakespeare-char in the paper), "lstm" (PTB), "t5" (C4)
    steps: int = 300  # optimizer steps, also Inexact Polyak's T (the paper sets T to the run length)
    batch_size: int = 32  # sequences per step (paper: 64 nanoGPT, 80 LSTM, 128 T5)
    block_size: int = 64  # tokens per sequence: characters for nanoGPT, words otherwise
    width: int = 64  # embedding / d_model
    layers: int = 2  # depth
    vocab_size: int = 2000  # word vocabulary (LSTM, T5): the most frequent words plus <unk>
    eval_batches: int = 8  # validation batches at the end

    def validate(self) -> None:
        check_choice("task", self.task, TASKS)
        for name in ("steps", "batch_size", "block_size", "width", "layers", "vocab_size", "eval_batches"):
            check_int(name, getattr(self, name), min_value=1)


# ----------------------------------------------------------------------------- models
class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_head)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """nanoGPT (pre-LN GPT-2 blocks, tied embeddings) at a small size."""

    def __init__(self, vocab: int, block_size: int, d: int = 64, layers: int = 2, n_head: int = 2):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(block_size, d)
        self.blocks = nn.ModuleList(Block(d, n_head) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight  # weight tying: initialised once, below, with std 0.02
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """nanoGPT's ``_init_weights``: N(0, 0.02) for linear and embedding weights, zero biases."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.ln(x))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


class WordLSTM(nn.Module):
    """A word-level LSTM language model (the AWD-LSTM family, without its regularisers)."""

    def __init__(self, vocab: int, d: int = 64, layers: int = 2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, d, num_layers=layers, batch_first=True)
        self.head = nn.Linear(d, vocab)
        # AWD-LSTM's init_weights: embedding and decoder U(-0.1, 0.1), decoder bias 0 (LSTM: PyTorch default)
        nn.init.uniform_(self.emb.weight, -0.1, 0.1)
        nn.init.uniform_(self.head.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx, targets):
        h, _ = self.lstm(self.emb(idx))
        return F.cross_entropy(self.head(h).flatten(0, 1), targets.flatten())


class T5SpanCorruption(nn.Module):
    """A small ``transformers.T5ForConditionalGeneration`` trained on span corruption (as nanoT5 pre-trains)."""

    def __init__(self, vocab: int, d: int = 64, layers: int = 2, n_sentinels: int = 32):
        super().__init__()
        try:
            from transformers import T5Config, T5ForConditionalGeneration
        except ImportError as e:
            raise ImportError("the T5 run needs transformers: pip install 'polyak_clip[t5]'") from e

        self.vocab, self.n_sentinels = vocab, n_sentinels
        cfg = T5Config(vocab_size=vocab + n_sentinels + 2, d_model=d, d_kv=d // 2, d_ff=2 * d, num_layers=layers,
                       num_heads=2, dropout_rate=0.0, pad_token_id=vocab, eos_token_id=vocab + 1,
                       decoder_start_token_id=vocab)
        self.model = T5ForConditionalGeneration(cfg)

    def forward(self, inputs, labels):
        return self.model(input_ids=inputs, labels=labels).loss


def span_corrupt(tokens: torch.Tensor, vocab: int, n_sentinels: int, noise: float = 0.15, mean_span: float = 3.0,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """T5 span corruption of ``[B, L]`` tokens: ~``noise`` of the tokens, in spans of mean length ``mean_span``,
    are replaced by sentinels in the input; the target lists each sentinel followed by its span.

    Returns:
        ``inputs`` ``[B, Li]`` and ``labels`` ``[B, Lt]`` padded with -100 (ignored by the loss); the pad id of
        the inputs is ``vocab``, sentinels are ``vocab + 2 + i``.
    """
    B, L = tokens.shape
    n_spans = max(1, round(L * noise / mean_span))
    span_len = max(1, round(mean_span))
    ins, tgs = [], []
    for b in range(B):
        starts = torch.randperm(L - span_len, generator=generator)[:n_spans].sort().values.tolist()
        inp, tgt, pos, k = [], [], 0, 0
        for s in starts:
            if s < pos or k >= n_sentinels:
                continue
            sentinel = vocab + 2 + k
            inp += tokens[b, pos:s].tolist() + [sentinel]
            tgt += [sentinel] + tokens[b, s:s + span_len].tolist()
            pos, k = s + span_len, k + 1
        inp += tokens[b, pos:].tolist() + [vocab + 1]
        tgt += [vocab + 1]
        ins.append(torch.tensor(inp))
        tgs.append(torch.tensor(tgt))
    inputs = nn.utils.rnn.pad_sequence(ins, batch_first=True, padding_value=vocab)
    labels = nn.utils.rnn.pad_sequence(tgs, batch_first=True, padding_value=-100)
    return inputs, labels


# ----------------------------------------------------------------------------- data
@functools.cache
def _stream_for(task: str, vocab_size: int) -> tuple[torch.Tensor, int]:
    text = text_corpus("lee")
    if task == "nanogpt":
        tok = CharTokenizer(text)
        return tok.encode(text), tok.vocab_size
    words = word_tokenize(text)
    vocab = [w for w, _ in Counter(words).most_common(vocab_size - 1)]
    index = {w: i + 1 for i, w in enumerate(vocab)}  # 0 = <unk>
    return torch.tensor([index.get(w, 0) for w in words]), len(vocab) + 1


def build(cfg: NeuralConfig, seed: int):
    """Model, train stream, validation stream and a batch function ``batch(stream, generator) -> (x, y)``."""
    ids, vocab = _stream_for(cfg.task, cfg.vocab_size)
    split = int(0.9 * len(ids))
    torch.manual_seed(seed)
    if cfg.task == "nanogpt":
        model = CharGPT(vocab, cfg.block_size, cfg.width, cfg.layers)
    elif cfg.task == "lstm":
        model = WordLSTM(vocab, cfg.width, cfg.layers)
    else:
        model = T5SpanCorruption(vocab, cfg.width, cfg.layers)

    def batch(stream, g):
        x, y = lm_batch(stream, cfg.block_size, cfg.batch_size, generator=g)
        if cfg.task == "t5":
            return span_corrupt(x, vocab, model.n_sentinels, generator=g)
        return x, y

    return model, ids[:split], ids[split:], batch


def make_optimizer(method: str, params, steps: int, lr: float | None = None, clip: float | None = None):
    """The paper's configuration of each method for the networks: l* = 0, f* = 0, no best-iterate tracking."""
    if method == "inexact_polyak":
        return OPTIMIZERS[method](params, T=steps, lower_bound=0.0, track_best=False)
    if method == "clipped_sgd":
        if lr is None:
            raise ValueError("clipped_sgd needs lr (and optionally clip)")
        return OPTIMIZERS[method](params, lr=lr, clip=math.inf if clip is None else clip)
    if method not in OPTIMIZERS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[method](params)


def diverged(losses: list[float]) -> bool:
    """A run diverged if a training loss is non-finite, or if the mean training loss over the last quarter
    of the run is above the first training loss (the loss ends where it started, or higher)."""
    if not losses or not all(math.isfinite(v) for v in losses):
        return True
    tail = losses[-max(1, len(losses) // 4):]
    return sum(tail) / len(tail) > losses[0]


def train(cfg: NeuralConfig, method: str, seed: int = 0, lr: float | None = None, clip: float | None = None,
          progress: bool = False) -> dict:
    """Train one model with one method; returns the training-loss curve, the final validation loss and
    whether the run diverged (:func:`diverged`, judged from the training curve). A run stops at its first
    non-finite loss."""
    from tqdm.auto import tqdm

    model, train_ids, val_ids, batch = build(cfg, seed)
    opt = make_optimizer(method, model.parameters(), cfg.steps, lr, clip)
    g = torch.Generator().manual_seed(seed)
    random.seed(seed)
    losses: list[float] = []
    for _ in tqdm(range(cfg.steps), desc=f"{cfg.task}/{method}", disable=not progress, leave=False):
        x, y = batch(train_ids, g)

        def closure():
            opt.zero_grad(set_to_none=False)
            loss = model(x, y)
            loss.backward()
            return loss

        losses.append(opt.step(closure).item())
        if not math.isfinite(losses[-1]):
            break
    bad = diverged(losses)
    val = evaluate(model, val_ids, batch, cfg, seed) if math.isfinite(losses[-1]) else math.inf
    val = val if math.isfinite(val) else math.inf
    return {"method": method, "seed": seed, "lr": lr, "clip": clip, "losses": losses, "val_loss": val,
            "diverged": bad or not math.isfinite(val)}


@torch.no_grad()
def evaluate(model, val_ids, batch, cfg: NeuralConfig, seed: int) -> float:
    g = torch.Generator().manual_seed(10_000 + seed)
    vals = [model(*batch(val_ids, g)).item() for _ in range(cfg.eval_batches)]
    return sum(vals) / len(vals)
