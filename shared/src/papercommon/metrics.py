"""Metrics shared by several packages: accuracy, causal-LM perplexity, rank correlation, kNN accuracy."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def accuracy(logits_or_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] from logits ``[N, C]`` or predicted labels ``[N]``."""
    pred = logits_or_pred.argmax(-1) if logits_or_pred.ndim == 2 else logits_or_pred
    if pred.shape != y.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(y.shape)} must have the same shape")
    if y.numel() == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return (pred == y).float().mean().item()


@torch.no_grad()
def perplexity(model: torch.nn.Module, ids: torch.Tensor, *, context: int = 512, stride: int | None = None,
               batch_size: int = 4, max_tokens: int | None = None, progress: bool = False) -> float:
    """Perplexity of a causal LM over a token stream, with a sliding window.

    Windows of ``context`` tokens advance by ``stride`` (default ``context``: disjoint windows); in each
    window only the tokens not scored by an earlier window count (the Hugging Face recipe), so every
    token after the first is scored once with up to ``context - stride`` tokens of left context.

    Args:
        model: a causal LM whose forward returns ``.logits`` (transformers) or a logits tensor.
        ids: a 1-D token stream (or ``[1, T]``).
        context: window length in tokens.
        stride: window step; smaller gives every token more context and costs more.
        batch_size: windows per forward pass.
        max_tokens: score only the first ``max_tokens`` tokens.
        progress: show a progress bar.

    Returns:
        ``exp`` of the mean negative log-likelihood per scored token.
    """
    ids = ids.reshape(-1) if ids.ndim == 2 and ids.shape[0] == 1 else ids
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D token stream, got shape {tuple(ids.shape)}")
    if max_tokens is not None:
        ids = ids[:max_tokens]
    stride = stride or context
    if not 0 < stride <= context:
        raise ValueError(f"need 0 < stride <= context, got stride={stride}, context={context}")
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens, got {len(ids)}")
    device = next(model.parameters()).device
    starts = list(range(0, max(len(ids) - context, 0) + 1, stride))
    if starts[-1] + context < len(ids):
        starts.append(len(ids) - context)
    nll, count, scored_until = 0.0, 0, 0
    windows = []
    for s in starts:
        e = min(s + context, len(ids))
        first = max(scored_until, s + 1)  # first target position this window scores
        windows.append((s, e, first))
        scored_until = e
    from tqdm.auto import tqdm

    for i in tqdm(range(0, len(windows), batch_size), desc="perplexity", disable=not progress):
        chunk = windows[i:i + batch_size]
        length = max(e - s for s, e, _ in chunk)
        x = torch.stack([F.pad(ids[s:e], (0, length - (e - s))) for s, e, _ in chunk]).to(device)
        out = model(x)
        logits = (out.logits if hasattr(out, "logits") else out).float()
        logp = logits[:, :-1].log_softmax(-1)  # predicts positions 1..length-1
        for b, (s, e, first) in enumerate(chunk):
            tgt = x[b, first - s:e - s]
            lp = logp[b, first - s - 1:e - s - 1].gather(-1, tgt[:, None])
            nll -= lp.sum().item()
            count += len(tgt)
    return math.exp(nll / count)


def spearman(a, b) -> float:
    """Spearman rank correlation (scipy), ignoring pairs where either value is NaN."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"spearman needs equal shapes, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < 2:
        raise ValueError("spearman needs at least 2 finite pairs")
    return float(spearmanr(a[keep], b[keep]).statistic)


def pearson(a, b) -> float:
    """Pearson correlation (scipy)."""
    from scipy.stats import pearsonr

    return float(pearsonr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).statistic)


@torch.no_grad()
def knn_accuracy(train_feats: torch.Tensor, train_y: torch.Tensor, test_feats: torch.Tensor, test_y: torch.Tensor,
                 *, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> float:
    """Cosine-weighted kNN accuracy, the monitor of SSL papers (InstDisc, SimSiam, PhiNet).

    Each test point takes its ``k`` most cosine-similar training points; each votes for its label with
    weight ``exp(sim / temperature)``; the class with the largest total wins.

    Args:
        train_feats: ``[N, D]`` memory-bank features.
        train_y: ``[N]`` labels.
        test_feats: ``[M, D]`` query features.
        test_y: ``[M]`` labels.
        k: neighbours (clipped to N).
        temperature: vote temperature.
        chunk: queries per block (memory is ``chunk x N``).
    """
    if train_feats.ndim != 2 or test_feats.ndim != 2 or train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"features must be [N, D] and [M, D], got {tuple(train_feats.shape)} and "
                         f"{tuple(test_feats.shape)}")
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    bank = F.normalize(train_feats.float(), dim=1)
    k = min(k, len(bank))
    correct = 0
    for i in range(0, len(test_feats), chunk):
        q = F.normalize(test_feats[i:i + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(len(q), n_classes, device=q.device)
        votes.scatter_add_(1, train_y.to(q.device)[idx], (sim / temperature).exp())
        correct += (votes.argmax(1) == test_y[i:i + chunk].to(q.device)).sum().item()
    return correct / len(test_feats)
