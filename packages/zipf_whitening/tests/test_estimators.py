import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.utils.estimator_checks import parametrize_with_checks
from zipf_whitening import (
    SIF,
    USIF,
    AllButTheTop,
    UniformCentering,
    UniformWhitening,
    ZipfianCentering,
    ZipfianWhitening,
)

# AllButTheTop / uSIF remove 3 / 5 directions by default; sklearn's checks use 2-3 feature data.
ESTIMATORS = [ZipfianWhitening(), ZipfianWhitening(n_components=2), UniformWhitening(), ZipfianCentering(),
              UniformCentering(), AllButTheTop(n_components=1), SIF(), USIF(n_components=1)]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _wcov(Z, p):
    return (Z * p[:, None]).T @ Z


def test_zipfian_whitening_moments(zipf_data):
    X, p = zipf_data
    Z = ZipfianWhitening().fit(X, sample_weight=p).transform(X)
    np.testing.assert_allclose(p @ Z, 0, atol=1e-10)
    np.testing.assert_allclose(_wcov(Z, p), np.eye(X.shape[1]), atol=1e-9)
    # ... and it is not uniform whitening: the plain mean is far from 0
    assert np.abs(Z.mean(0)).max() > 0.1


def test_weights_are_normalised_and_uniform_is_pca(zipf_data):
    X, p = zipf_data
    a = ZipfianWhitening().fit(X, sample_weight=p).transform(X)
    b = ZipfianWhitening().fit(X, sample_weight=1234.5 * p).transform(X)
    np.testing.assert_allclose(a, b, atol=1e-10)
    n = len(X)
    u = ZipfianWhitening().fit(X, sample_weight=np.ones(n)).transform(X)
    np.testing.assert_allclose(u, ZipfianWhitening().fit(X).transform(X), atol=1e-10)
    pca = PCA(whiten=True, svd_solver="full").fit_transform(X)
    np.testing.assert_allclose(np.abs(UniformWhitening().fit_transform(X)), np.abs(pca), atol=1e-8)
    np.testing.assert_allclose(np.abs(u) * np.sqrt((n - 1) / n), np.abs(pca), atol=1e-8)


def test_integer_weights_equal_repetition(zipf_data):
    X, _ = zipf_data
    X = X[:50]
    w = np.random.default_rng(3).integers(0, 4, size=50)
    a = ZipfianWhitening().fit(X, sample_weight=w).transform(X)
    b = ZipfianWhitening().fit(np.repeat(X, w, axis=0)).transform(X)
    np.testing.assert_allclose(a, b, atol=1e-8)


def test_rotation_invariance(zipf_data):
    X, p = zipf_data
    Q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(X.shape[1],) * 2))
    Z1 = ZipfianWhitening().fit(X, sample_weight=p).transform(X)
    Z2 = ZipfianWhitening().fit(X @ Q, sample_weight=p).transform(X @ Q)
    np.testing.assert_allclose(Z1 @ Z1.T, Z2 @ Z2.T, atol=1e-8)  # same up to an orthogonal map


def test_inverse_transform_and_truncation(zipf_data):
    X, p = zipf_data
    zw = ZipfianWhitening().fit(X, sample_weight=p)
    np.testing.assert_allclose(zw.inverse_transform(zw.transform(X)), X, atol=1e-9)
    z3 = ZipfianWhitening(n_components=3).fit(X, sample_weight=p)
    Z = z3.transform(X)
    assert Z.shape == (len(X), 3)
    np.testing.assert_allclose(_wcov(Z, p), np.eye(3), atol=1e-9)
    R = z3.inverse_transform(Z)
    # the reconstruction is the weighted projection onto the top-3 directions: the residual is orthogonal
    np.testing.assert_allclose((R - z3.mean_) @ (X - R).T * 0, 0)
    np.testing.assert_allclose((X - R) @ z3.components_.T, 0, atol=1e-8)
    assert list(z3.get_feature_names_out()) == ["zipfianwhitening0", "zipfianwhitening1", "zipfianwhitening2"]
    np.testing.assert_allclose((X - zw.mean_) @ zw.transformation_matrix_, zw.transform(X), atol=1e-10)


def test_torch_in_torch_out(zipf_data):
    X, p = zipf_data
    Xt = torch.from_numpy(X).float()
    zw = ZipfianWhitening().fit(Xt, sample_weight=torch.from_numpy(p))
    Zt = zw.transform(Xt)
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == torch.float32
    Zn = ZipfianWhitening().fit(X.astype(np.float32), sample_weight=p).transform(X.astype(np.float32))
    assert Zn.dtype == np.float32
    np.testing.assert_allclose(Zt.numpy(), Zn, atol=1e-5)
    back = zw.inverse_transform(Zt)
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy(), X, atol=1e-4)


@pytest.mark.parametrize("w, msg", [
    (lambda n: -np.ones(n), "Negative values|non-negative"),
    (lambda n: np.full(n, np.nan), "NaN|finite"),
    (lambda n: np.zeros(n), "not all be zero|at least one non-zero"),
    (lambda n: np.ones(n + 1), r"\(\d+,\)|expected"),
])
def test_bad_weights(zipf_data, w, msg):
    X, _ = zipf_data
    with pytest.raises(ValueError, match=msg):
        ZipfianWhitening().fit(X, sample_weight=w(len(X)))
    with pytest.raises(ValueError, match="finite|not all be zero|non-negative|expected|non-zero"):
        ZipfianWhitening().fit(torch.from_numpy(X), sample_weight=torch.from_numpy(w(len(X))))


def test_bad_inputs(zipf_data):
    X, p = zipf_data
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ZipfianWhitening().fit(bad, sample_weight=p)
    with pytest.raises(ValueError, match="NaN"):
        ZipfianWhitening().fit(torch.from_numpy(bad))
    with pytest.raises(ValueError, match="n_components=7 must be <= n_features = 6"):
        ZipfianWhitening(n_components=7).fit(X)
    with pytest.raises(ValueError, match="positive integer"):
        ZipfianWhitening(n_components=0).fit(X)
    zw = ZipfianWhitening().fit(X)
    with pytest.raises(ValueError, match="5 features, but ZipfianWhitening is expecting 6"):
        zw.transform(X[:, :5])
    with pytest.raises(ValueError, match="2-D"):
        ZipfianWhitening().fit(torch.ones(3))
    for empty in (np.empty((1, 0)), torch.empty(1, 0, dtype=torch.float64)):  # numpy and torch say the same
        with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(1, 0\)\)"):
            ZipfianWhitening().fit(empty)
    huge = X.copy()
    huge[0, 0] = 1e160  # finite, but its square overflows float64
    with pytest.raises(ValueError, match=r"ZipfianWhitening: X: expected \|values\| <= .* got max \|x\| = 1e\+160"):
        ZipfianWhitening().fit(huge)


def test_near_singular_is_safe():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 4))
    X = np.c_[X, X[:, 0] + 1e-13 * rng.normal(size=200), X[:, 1]]  # two (near-)duplicate columns
    Z = ZipfianWhitening().fit_transform(X)
    assert np.isfinite(Z).all() and np.abs(Z).max() < 10
    C = Z.T @ Z / len(Z)
    np.testing.assert_allclose(np.diag(C)[:4], 1, atol=1e-8)
    np.testing.assert_allclose(np.diag(C)[4:], 0, atol=1e-8)


def test_centering_and_abtt(zipf_data):
    X, p = zipf_data
    np.testing.assert_allclose(p @ ZipfianCentering().fit(X, sample_weight=p).transform(X), 0, atol=1e-10)
    np.testing.assert_allclose(UniformCentering().fit_transform(X).mean(0), 0, atol=1e-10)
    abtt = AllButTheTop(3).fit(X)
    Y = abtt.transform(X)
    np.testing.assert_allclose(Y.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(Y @ abtt.components_.T, 0, atol=1e-9)
    top = PCA(3).fit(X).components_
    np.testing.assert_allclose(np.abs(abtt.components_), np.abs(top), atol=1e-8)
    np.testing.assert_allclose(UniformCentering().fit(X).inverse_transform(UniformCentering().fit_transform(X)), X)


def test_sif_and_usif_removal():
    rng = np.random.default_rng(6)
    S = rng.normal(size=(100, 5)) + np.array([5.0, 0, 0, 0, 0])  # a dominant common direction
    sif = SIF().fit(S)
    assert abs(abs(sif.components_[0, 0]) - 1) < 0.05
    np.testing.assert_allclose(sif.transform(S) @ sif.components_.T, 0, atol=1e-10)
    us = USIF(n_components=3).fit(S)
    np.testing.assert_allclose(us.component_weights_.sum(), 1.0)
    assert us.component_weights_[0] > us.component_weights_[1]
    p = np.full(10, 0.1)
    np.testing.assert_allclose(sif.word_weights(p), 1e-3 / (1e-3 + 0.1))


def test_pickle_and_clone(zipf_data):
    X, p = zipf_data
    zw = ZipfianWhitening(n_components=4).fit(X, sample_weight=p)
    zw2 = pickle.loads(pickle.dumps(zw))
    np.testing.assert_array_equal(zw.transform(X), zw2.transform(X))
    assert clone(zw).get_params() == {"n_components": 4, "eps": 1e-10}
