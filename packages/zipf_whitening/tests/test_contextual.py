import numpy as np
import pytest
from zipf_whitening.contextual import TokenWhitening, encode_tokens, token_prior_weights


def test_type_prior_gives_every_type_equal_mass():
    ids = np.array([5, 5, 5, 7, 9, 9])
    w = token_prior_weights(ids, "type")
    for t in (5, 7, 9):
        assert w[ids == t].sum() == pytest.approx(1 / 3)
    assert token_prior_weights(ids, "token") is None
    with pytest.raises(ValueError, match="prior"):
        token_prior_weights(ids, "zipf")


@pytest.fixture(scope="module")
def minilm():
    from papercommon.data import load_minilm

    return load_minilm()


TEXTS = ["A man is playing a guitar.", "Someone plays an instrument on stage.", "The stock market fell today.",
         "Shares dropped sharply on Monday."]


@pytest.fixture(scope="module")
def tiny_bert():
    """A 1-layer, 32-d random BERT with MiniLM's real tokenizer: the mechanics, fast."""
    import torch
    import transformers as tf
    from papercommon.data import minilm_path

    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    return tf.BertModel(cfg).eval(), tf.AutoTokenizer.from_pretrained(minilm_path())


@pytest.mark.parametrize("layers", ["last", "first_last"])
def test_token_whitening_mechanics_tiny(tiny_bert, layers):
    model, tok = tiny_bert
    texts = TEXTS * 10
    batch = encode_tokens(model, tok, texts, layers=layers, batch_size=7)
    assert batch.vectors.shape[1] == 32 and batch.n_docs == 40
    lens = [len(tok(t)["input_ids"]) for t in texts]
    assert np.bincount(batch.doc).tolist() == lens  # every real token once, no padding
    no_special = encode_tokens(model, tok, texts, layers=layers, skip_special=True)
    assert len(no_special.ids) == len(batch.ids) - 2 * len(texts)
    for prior in ("token", "type"):
        tw = TokenWhitening(model, tok, prior=prior).fit(batch)
        Z = tw.estimator_.transform(batch.vectors.astype(np.float64))
        w = token_prior_weights(batch.ids, prior)
        w = np.full(len(Z), 1 / len(Z)) if w is None else w
        np.testing.assert_allclose(w @ Z, 0, atol=1e-8)
        kept = tw.estimator_.scale_ > 0  # repeated texts: a few null directions map to 0
        assert kept.sum() >= 25
        np.testing.assert_allclose((Z * w[:, None]).T @ Z, np.diag(kept.astype(float)), atol=1e-6)
        E = tw.embed(batch)
        np.testing.assert_allclose(E[0], Z[batch.doc == 0].mean(0), atol=1e-5)


@pytest.mark.slow
def test_encode_and_whiten_real_minilm(minilm):
    model, tok = minilm
    batch = encode_tokens(model, tok, TEXTS)
    assert batch.vectors.shape[1] == 384 and batch.n_docs == 4 and len(batch.ids) == len(batch.doc)
    assert (batch.ids == tok.cls_token_id).sum() == 4  # [CLS] kept, padding dropped
    # raw pooling equals MiniLM's own masked mean of last_hidden_state
    raw = TokenWhitening(model, tok, transform=None).fit_embed(batch)
    import torch

    enc = tok(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        ref = model(**enc).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(raw[0], ref, atol=1e-5)
    for prior in ("token", "type"):
        tw = TokenWhitening(model, tok, prior=prior).fit(batch)
        Z = tw.estimator_.transform(batch.vectors.astype(np.float64))
        w = token_prior_weights(batch.ids, prior)
        w = np.full(len(Z), 1 / len(Z)) if w is None else w
        np.testing.assert_allclose(w @ Z, 0, atol=1e-4)  # weighted mean 0 under the chosen prior
        E = tw.embed(batch)
        assert E.shape == (4, 384) and np.isfinite(E).all()
    with pytest.raises(RuntimeError, match="not fitted"):
        TokenWhitening(model, tok).embed(batch)
    with pytest.raises(ValueError, match="prior"):
        TokenWhitening(model, tok, prior="zipf")
    with pytest.raises(ValueError, match="layers"):
        encode_tokens(model, tok, TEXTS, layers="middle")
