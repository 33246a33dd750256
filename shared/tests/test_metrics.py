import math

import pytest
import torch
from papercommon.metrics import accuracy, knn_accuracy, pearson, perplexity, spearman


def test_accuracy():
    assert accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    assert accuracy(torch.tensor([2, 1]), torch.tensor([2, 1])) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        accuracy(torch.tensor([1, 2]), torch.tensor([1]))


def test_rank_correlations():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, float("nan"), 4], [4, 3, 0, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)


class Uniform(torch.nn.Module):
    """A causal LM that predicts the uniform distribution: perplexity equals the vocabulary size."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.zeros(*x.shape, self.vocab) + self.w


class Bigram(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, x):
        return self.table[x]


def test_perplexity_closed_forms():
    ids = torch.randint(0, 50, (1000,))
    assert perplexity(Uniform(50), ids, context=64) == pytest.approx(50, rel=1e-5)
    # A bigram model needs one token of context: overlapping windows give every token its predecessor,
    # so the result equals the exact bigram perplexity whatever the window and stride.
    table = torch.randn(50, 50)
    exact = math.exp(-table.log_softmax(-1)[ids[:-1], ids[1:]].mean().item())
    for context, stride in [(16, 15), (16, 5), (1000, None), (64, 63)]:
        assert perplexity(Bigram(table), ids, context=context, stride=stride) == pytest.approx(exact, rel=1e-5)
    # Disjoint windows (stride == context) cannot score the first token of each window.
    per_window = table.log_softmax(-1)[ids[:-1], ids[1:]].reshape(-1)
    kept = torch.ones(999, dtype=torch.bool)
    kept[15::16] = False  # targets 16, 32, ... start a window
    assert perplexity(Bigram(table), ids[:992], context=16) == pytest.approx(
        math.exp(-per_window[:991][kept[:991]].mean().item()), rel=1e-5)
    with pytest.raises(ValueError, match="stride"):
        perplexity(Uniform(5), ids, context=8, stride=9)


def test_knn_accuracy():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 16, generator=g) * 5
    y = torch.arange(3).repeat(100)
    X = centers[y] + torch.randn(300, 16, generator=g)
    assert knn_accuracy(X[:200], y[:200], X[200:], y[200:], k=20) == 1.0
    rand = knn_accuracy(torch.randn(200, 16, generator=g), y[:200], torch.randn(100, 16, generator=g), y[200:], k=20)
    assert rand < 0.6
    with pytest.raises(ValueError, match="features"):
        knn_accuracy(X[:10], y[:10], X[:5, :3], y[:5])
