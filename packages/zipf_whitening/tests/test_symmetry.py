import numpy as np
import pytest
from zipf_whitening import ZipfianWhitening, average_cosine, isoscore, sym1, sym2, symmetry_scores


def test_scores_are_one_after_zipfian_whitening(zipf_data):
    X, p = zipf_data
    Z = ZipfianWhitening().fit(X, sample_weight=p).transform(X)
    assert sym1(Z, p) == pytest.approx(1.0, abs=1e-9)
    assert sym2(Z, p) == pytest.approx(1.0, abs=1e-9)
    # the uniform scores of the same space are not 1: the prior matters
    assert sym1(Z) < 0.99 and sym2(Z) < 0.99
    # and before whitening the Zipfian scores are far from 1
    assert sym1(X, p) < 0.9 and sym2(X, p) < 0.9


def test_hand_cases():
    X = np.array([[1.0, 0.0], [1.0, 0.0]])  # all mass at one point: mean norm = mean of norms
    assert sym1(X) == pytest.approx(0.0)
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # centred, isotropic
    assert sym1(X) == pytest.approx(1.0) and sym2(X) == pytest.approx(1.0) and isoscore(X) == pytest.approx(1.0)
    # weights: sym1 = 1 - |0.75 - 0.25| / 1
    assert sym1(np.array([[1.0], [-1.0]]), np.array([3.0, 1.0])) == pytest.approx(0.5)


def test_isoscore_extremes():
    rng = np.random.default_rng(0)
    assert isoscore(rng.normal(size=(20000, 8))) > 0.99
    line = rng.normal(size=(500, 1)) * np.ones((1, 8))
    assert isoscore(line) < 1e-6


def test_average_cosine_matches_brute_force():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3)) + 1.0
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    G = U @ U.T
    brute = (G.sum() - np.trace(G)) / (40 * 39)
    assert average_cosine(X) == pytest.approx(brute, rel=1e-12)
    p = rng.random(40)
    p /= p.sum()
    assert average_cosine(X, p) == pytest.approx(p @ G @ p, rel=1e-12)


def test_symmetry_scores_agree_with_single_scores(zipf_data):
    X, p = zipf_data
    s = symmetry_scores(X, p)
    assert s["sym1_zipf"] == pytest.approx(sym1(X, p)) and s["sym2_zipf"] == pytest.approx(sym2(X, p))
    assert s["sym1_uniform"] == pytest.approx(sym1(X)) and s["sym2_uniform"] == pytest.approx(sym2(X))
    assert s["isoscore"] == pytest.approx(isoscore(X))
    assert s["one_minus_avg_cos"] == pytest.approx(1 - average_cosine(X))
    assert "sym1_zipf" not in symmetry_scores(X)


def test_errors():
    with pytest.raises(ValueError, match="NaN"):
        sym1(np.array([[np.nan, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="at least 2 rows"):
        sym2(np.ones((1, 3)))
    with pytest.raises(ValueError, match="zero vector"):
        average_cosine(np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="expected 3, got 2"):
        sym1(np.ones((3, 2)), np.ones(2))
