import numpy as np
import pytest
from zipf_whitening import (
    SIF,
    DocumentEmbedder,
    UniformWhitening,
    ZipfianWhitening,
    load_glove_wordfreq,
    make_embedder,
    tokenize,
)


def test_tokenize_follows_official_preprocessing():
    assert tokenize("Don't re-read John's e-mail!") == ["do", "not", "re", "read", "john", "s", "e", "mail"]
    assert tokenize("U.S. GDP rose 3.5%") == ["u", "s", "gdp", "rose", "3", "5"]
    with pytest.raises(TypeError):
        tokenize(3)


@pytest.fixture
def toy():
    words = ["the", "cat", "dog", "sat", "mat"]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])
    p = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    return vectors, words, p


def test_mean_pooling_drops_oov(toy):
    vectors, words, p = toy
    emb = DocumentEmbedder(vectors, words, p).fit()
    E = emb.embed(["The cat sat on the zzz mat."])  # 'on', 'zzz' are OOV
    np.testing.assert_allclose(E[0], (2 * vectors[0] + vectors[1] + vectors[3] + vectors[4]) / 5)
    _, oov = emb.bag_of_words(["The cat sat on the zzz mat."])
    assert oov.tolist() == [2]


def test_empty_documents(toy):
    vectors, words, p = toy
    emb = DocumentEmbedder(vectors, words, p).fit()
    with pytest.warns(UserWarning, match="no in-vocabulary word"):
        E = emb.embed(["qqq", "cat"])
    np.testing.assert_array_equal(E[0], 0)
    with pytest.raises(ValueError, match="no in-vocabulary"):
        DocumentEmbedder(vectors, words, p, on_empty="raise").fit().embed(["qqq"])
    with pytest.raises(TypeError, match="single str"):
        emb.embed("cat")


def test_transform_is_fitted_with_word_prob(toy):
    vectors, words, p = toy
    emb = DocumentEmbedder(vectors, words, p, transform=ZipfianWhitening()).fit()
    ref = ZipfianWhitening().fit(vectors, sample_weight=p)
    np.testing.assert_allclose(emb.transform_.mean_, ref.mean_)
    np.testing.assert_allclose(emb.embed(["dog"])[0], ref.transform(vectors[2:3])[0])
    # UniformWhitening takes no weights; a pre-fitted transform is used as is
    DocumentEmbedder(vectors, words, p, transform=UniformWhitening()).fit()
    pre = ZipfianWhitening().fit(vectors)
    assert DocumentEmbedder(vectors, words, p, transform=pre).fit().transform_ is pre
    with pytest.raises(ValueError, match="word_prob"):
        DocumentEmbedder(vectors, words, None, transform=ZipfianWhitening()).fit()


def test_sif_weights_and_post(toy):
    vectors, words, p = toy
    emb = DocumentEmbedder(vectors, words, p, word_weights="sif", post=SIF(a=0.1)).fit()
    np.testing.assert_allclose(emb.pool_weights_, 0.1 / (0.1 + p))
    E = emb.embed(["the cat", "dog sat", "mat the dog"])
    np.testing.assert_allclose(E @ emb.post_.components_.T, 0, atol=1e-12)


def test_bad_arguments(toy):
    vectors, words, p = toy
    with pytest.raises(ValueError, match=r"\(len\(words\), d\)"):
        DocumentEmbedder(vectors[:3], words, p)
    with pytest.raises(ValueError, match="word_prob must have shape"):
        DocumentEmbedder(vectors, words, p[:2])
    with pytest.raises(ValueError, match="duplicate"):
        DocumentEmbedder(vectors, ["a", "a", "b", "c", "d"], p)
    with pytest.raises(ValueError, match="unknown method"):
        make_embedder("pca", vectors, words, p)
    with pytest.raises(ValueError, match="word_weights"):
        DocumentEmbedder(vectors, words, p, word_weights="tfidf")


def test_real_glove_zipfian_whitening_beats_uniform_on_lee():
    from papercommon.data import lee_documents
    from zipf_whitening.evaluation import lee_spearman

    vectors, words, p = load_glove_wordfreq()
    assert vectors.shape == (227765, 50) and p.sum() == pytest.approx(1.0)
    docs, sims = lee_documents()
    rho = {m: lee_spearman(make_embedder(m, vectors, words, p).embed(docs), sims)
           for m in ("raw", "uniform_whitening", "zipfian_whitening")}
    assert rho["zipfian_whitening"] > 0.59  # official code on this data: 0.596
    assert rho["zipfian_whitening"] > rho["uniform_whitening"] + 0.1
    assert rho["zipfian_whitening"] > rho["raw"] + 0.1
