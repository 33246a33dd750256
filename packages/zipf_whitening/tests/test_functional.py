import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from zipf_whitening import functional as F


def test_weighted_moments_match_numpy(zipf_data):
    X, p = zipf_data
    mu, C = F.weighted_moments(X, p)
    np.testing.assert_allclose(mu.numpy(), p @ X, rtol=1e-12)
    np.testing.assert_allclose(C.numpy(), np.cov(X.T, aweights=p, bias=True), rtol=1e-10, atol=1e-12)


def test_weighted_moments_chunking_and_float32(zipf_data):
    X, p = zipf_data
    mu, C = F.weighted_moments(X, p)
    X32 = X.astype(np.float32)
    mu7, C7 = F.weighted_moments(X32, p, chunk=7)
    # float32 input is accumulated in float64: exact moments of the float32 values
    np.testing.assert_allclose(mu7.numpy(), p @ X32.astype(np.float64), rtol=1e-12)
    np.testing.assert_allclose(C7.numpy(), np.cov(X32.astype(np.float64).T, aweights=p, bias=True), rtol=1e-10)
    np.testing.assert_allclose(C7.numpy(), C.numpy(), rtol=1e-5, atol=1e-6)
    mu_u, _ = F.weighted_moments(torch.from_numpy(X))
    np.testing.assert_allclose(mu_u.numpy(), X.mean(0), rtol=1e-12)


def test_fast_path_equals_official_recipe(zipf_data):
    X, p = zipf_data
    ref, T = F.whitening_reference(X, p)
    mu, C = F.weighted_moments(X, p)
    comps, lam, scale = F.whitening_from_moments(C)
    fast = F.whiten(X, mu, comps, scale)
    np.testing.assert_allclose(fast.numpy(), ref.numpy(), atol=1e-9)
    np.testing.assert_allclose((comps.T * scale).numpy(), T.numpy(), atol=1e-9)


def test_uniform_reference_is_sklearn_pca_whiten(zipf_data):
    X, _ = zipf_data
    ref, _ = F.whitening_reference(X, None, ddof=1)
    sk = PCA(whiten=True, svd_solver="full").fit_transform(X)
    np.testing.assert_allclose(np.abs(ref.numpy()), np.abs(sk), atol=1e-8)


def test_whitening_is_identity_covariance(zipf_data):
    X, p = zipf_data
    Z, _ = F.whitening_reference(X, p)
    Z = Z.numpy()
    np.testing.assert_allclose(p @ Z, 0, atol=1e-10)
    np.testing.assert_allclose((Z * p[:, None]).T @ Z, np.eye(X.shape[1]), atol=1e-9)


def test_singular_covariance_null_directions_get_zero_scale():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    X = np.c_[X, X[:, 0]]  # rank 3 in 4 dims
    _, C = F.weighted_moments(X)
    _, lam, scale = F.whitening_from_moments(C)
    assert scale[-1] == 0 and torch.all(scale[:3] > 0)
    assert lam[-1] < 1e-12 * lam[0]


@pytest.mark.parametrize("w, msg", [
    (np.array([1.0, -1.0, 2.0]), "non-negative"),
    (np.array([1.0, np.nan, 2.0]), "finite"),
    (np.array([1.0, np.inf, 2.0]), "finite"),
    (np.zeros(3), "not all be zero"),
    (np.ones(4), "expected 3, got 4"),
    (np.ones((3, 1)), "1-D"),
])
def test_normalize_weights_errors(w, msg):
    with pytest.raises(ValueError, match=msg):
        F.normalize_weights(w, 3)


def test_normalize_weights_rescales():
    np.testing.assert_allclose(F.normalize_weights(np.array([1.0, 3.0])).numpy(), [0.25, 0.75])


def test_sif_and_usif_weights_by_hand():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(F.sif_weights(p, a=0.1).numpy(), 0.1 / (0.1 + p))
    # V = 4, n = 1: threshold = 1/4; words above it: 0.5, 0.3 -> alpha = 1/2; a = (1/2) / (1/2 * 2) = 0.5
    assert F.usif_a(p, n=1) == pytest.approx(0.5)
    np.testing.assert_allclose(F.usif_weights(p, n=1).numpy(), 0.5 / (0.25 + p))
    with pytest.raises(ValueError, match="a must be > 0"):
        F.sif_weights(p, a=0.0)
    with pytest.raises(ValueError, match="too small"):
        F.usif_a(np.full(4, 0.25), n=1)


def test_top_components_uncentered_is_truncated_svd():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 5)) + 3.0
    comps, _ = F.top_components(X, 2, center=False)
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(np.abs(comps.numpy()), np.abs(Vt[:2]), atol=1e-10)


@pytest.mark.parametrize("chunk", [None, 7, 1000])
def test_numpy_and_torch_moment_paths_equal_the_two_pass_reference(zipf_data, chunk):
    # the fast paths (CPU: augmented syrk in numpy; other devices: shifted torch pass) against the
    # textbook two-pass float64 moments, with a large offset that a one-pass formula would cancel badly
    X, p = zipf_data
    X = X + 1e4
    mu_ref = p @ X
    C_ref = ((X - mu_ref) * p[:, None]).T @ (X - mu_ref)
    ch = chunk or F.CHUNK_ELEMENTS // X.shape[1]
    for fn in (F._moments_numpy, F._moments_torch):
        mu, C = fn(torch.from_numpy(X), torch.from_numpy(p), ch)
        np.testing.assert_allclose(mu.numpy(), mu_ref, rtol=1e-13)
        np.testing.assert_allclose(C.numpy(), C_ref, rtol=1e-9, atol=1e-9)


def test_null_tolerance_drops_only_noise(zipf_data):
    X, p = zipf_data
    mu, C = F.weighted_moments(X, p)
    _, lam, scale = F.whitening_from_moments(C, atol=F.null_tolerance(C, mu, len(X)))
    assert torch.all(scale > 0)  # real data: nothing dropped
    mu1, C1 = F.weighted_moments(np.ones((50, 8)))
    assert float(C1.abs().max()) == 0.0  # the shift makes a constant X exact
    _, _, s1 = F.whitening_from_moments(C1, atol=F.null_tolerance(C1, mu1, 50))
    assert torch.all(s1 == 0)
