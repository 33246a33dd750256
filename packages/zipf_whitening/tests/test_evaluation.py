import numpy as np
import pytest
from zipf_whitening.evaluation import cosine_matrix, lee_spearman, row_cosine, word_similarity_spearman


def test_cosines():
    E = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    C = cosine_matrix(E)
    assert C[0, 1] == pytest.approx(1 / np.sqrt(2)) and C[2, 0] == 0
    np.testing.assert_allclose(row_cosine(E[:2], E[[1, 1]]), [1 / np.sqrt(2), 1.0])


def test_lee_spearman_perfect_and_shape_error():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(6, 4))
    assert lee_spearman(E, cosine_matrix(E)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="need E"):
        lee_spearman(E, np.eye(5))


def test_word_similarity_skips_unknown_words():
    table = {"a": [1.0, 0.0], "b": [1.0, 0.1], "c": [0.0, 1.0]}

    def embed_words(ws):
        known = np.array([w in table for w in ws])
        return np.array([table[w] for w in ws if w in table]), known

    rho, n = word_similarity_spearman(embed_words, [("a", "b", 9.0), ("a", "c", 1.0), ("b", "c", 2.0),
                                                    ("a", "zz", 5.0)])
    assert n == 3 and rho == pytest.approx(1.0)
    with pytest.raises(ValueError, match="only 0 pair"):
        word_similarity_spearman(embed_words, [("x", "y", 1.0)])
