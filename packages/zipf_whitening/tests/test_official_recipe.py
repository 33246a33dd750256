"""Issue 18: the official recipe's arithmetic, written out in numpy here (not through our functions).

The paper / official code (``src/zipfian_whitening.py``): mu = p^T W; W_c = W - mu; the weighted
covariance C = W_c^T diag(p) W_c (population normalisation); its eigendecomposition C = V diag(lam) V^T;
T = V diag(lam)^(-1/2); whitened = W_c T. The official code takes the SVD of diag(sqrt p) W_c, whose
right singular vectors and squared singular values are V and lam: both forms are checked.
"""

import numpy as np
import pytest
from zipf_whitening import UniformWhitening, ZipfianWhitening


def _official(W, p):
    W = W.astype(np.float64)
    p = p / p.sum()
    mu = p @ W
    Wc = W - mu
    C = Wc.T @ (Wc * p[:, None])
    lam, V = np.linalg.eigh(C)
    lam, V = lam[::-1], V[:, ::-1]
    return mu, V / np.sqrt(lam), lam


def _svd_form(W, p):
    p = p / p.sum()
    mu = p @ W
    _, S, Vt = np.linalg.svd((W - mu) * np.sqrt(p)[:, None], full_matrices=False)
    return Vt.T / S


def _align(T, ref):
    """Eigenvectors are defined up to sign: flip each column of T to match ref."""
    return T * np.sign(np.sum(T * ref, axis=0))


@pytest.fixture
def word_like():
    rng = np.random.default_rng(3)
    n, d = 3000, 12
    p = 1.0 / np.arange(1, n + 1) ** 1.1
    X = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 2.0
    X[:, 0] += 0.8 * np.log(p)  # frequency direction
    return X.astype(np.float32), p


def test_zipfian_whitening_equals_official_arithmetic(word_like):
    X, p = word_like
    mu, T, lam = _official(X, p)
    est = ZipfianWhitening().fit(X.astype(np.float64), sample_weight=p * 7.0)  # unnormalised counts
    np.testing.assert_allclose(est.mean_, mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(est.explained_variance_, lam, rtol=1e-9)
    np.testing.assert_allclose(_align(est.transformation_matrix_, T), T, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(_align(_svd_form(X.astype(np.float64), p), T), T, rtol=1e-7, atol=1e-9)
    Z = est.transform(X.astype(np.float64))
    np.testing.assert_allclose(_align(Z, (X - mu) @ T), (X - mu) @ T, atol=1e-8)


def test_float32_input_stays_within_float32_rounding_of_the_official_float64_result(word_like):
    X, p = word_like
    mu, T, _ = _official(X, p)
    Z = ZipfianWhitening().fit(X, sample_weight=p).transform(X)
    assert Z.dtype == np.float32
    ref = (X.astype(np.float64) - mu) @ T
    np.testing.assert_allclose(_align(Z.astype(np.float64), ref), ref, atol=2e-4)


def test_uniform_whitening_equals_official_uniform_arithmetic(word_like):
    X, _ = word_like
    X = X.astype(np.float64)
    n = len(X)
    mu = X.mean(0)
    _, S, Vt = np.linalg.svd(X - mu, full_matrices=False)
    T = Vt.T / (S / np.sqrt(n - 1))  # official UniformWhitening: S / sqrt(n - 1)
    est = UniformWhitening().fit(X)
    np.testing.assert_allclose(_align(est.transformation_matrix_, T), T, rtol=1e-7, atol=1e-9)
