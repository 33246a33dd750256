"""Issue 20: bad input is rejected with a message naming the argument, or handled as documented."""

import numpy as np
import pytest
import torch
from zipf_whitening import SIF, USIF, DocumentEmbedder, UniformWhitening, ZipfianWhitening


@pytest.mark.parametrize("cls", [ZipfianWhitening, UniformWhitening])
def test_zero_variance_x_maps_to_zero(cls):
    # every direction has zero variance: rounding noise must not be whitened up to 1e15
    est = cls().fit(np.ones((50, 8)))
    Z = est.transform(np.ones((50, 8)) + 1)
    assert np.all(est.scale_ == 0)
    np.testing.assert_array_equal(Z, 0)


def test_zero_variance_direction_among_others_maps_to_zero(zipf_data):
    X, p = zipf_data
    Xc = np.c_[X, np.full(len(X), 3.0)]  # a constant 7th column
    est = ZipfianWhitening().fit(Xc, sample_weight=p)
    assert (est.scale_ > 0).sum() == X.shape[1] and est.scale_[-1] == 0
    Z = est.transform(Xc + np.r_[np.zeros(X.shape[1]), 1.0])  # move along the null direction only
    assert np.abs(Z).max() < 1e3  # whitened coordinates, not 1e15
    np.testing.assert_allclose((Z * p[:, None]).T @ Z, np.diag((est.scale_ > 0).astype(float)), atol=1e-8)


def test_inverse_transform_rejects_nan_tensor(zipf_data):
    X, p = zipf_data
    est = ZipfianWhitening().fit(torch.from_numpy(X), sample_weight=torch.from_numpy(p))
    Z = est.transform(torch.from_numpy(X))
    Z[3, 1] = float("nan")
    with pytest.raises(ValueError, match="inverse_transform: X: expected finite"):
        est.inverse_transform(Z)


def _words(n):
    return [f"w{i}" for i in range(n)]


def test_document_embedder_rejects_nan_word_prob():
    V = np.random.default_rng(0).normal(size=(5, 3))
    p = np.array([0.2, np.nan, 0.2, 0.3, 0.3])
    with pytest.raises(ValueError, match="word_prob: expected finite"):
        DocumentEmbedder(V, _words(5), p, transform=ZipfianWhitening())


def test_document_embedder_rejects_negative_word_prob():
    V = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValueError, match="word_prob: expected finite non-negative"):
        DocumentEmbedder(V, _words(5), np.array([0.5, -0.1, 0.2, 0.2, 0.2]))


def test_document_embedder_rejects_nan_vectors():
    V = np.random.default_rng(0).normal(size=(5, 3))
    V[2, 0] = np.inf
    with pytest.raises(ValueError, match="vectors: expected finite numbers, got 1 NaN or inf"):
        DocumentEmbedder(V, _words(5), np.full(5, 0.2))


@pytest.mark.parametrize("a", [-1.0, 0.0, float("nan")])
def test_sif_rejects_bad_a(a):
    with pytest.raises(ValueError, match="SIF: a: expected a finite number > 0"):
        SIF(a=a).fit(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="SIF: a"):
        SIF(a=a).word_weights(np.full(4, 0.25))


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_usif_rejects_bad_n(n):
    with pytest.raises(ValueError, match="USIF: n: expected an int >= 1"):
        USIF(n=n).fit(np.random.default_rng(0).normal(size=(10, 6)))
