"""Every offline loader loads real data: shapes and a known value."""

import numpy as np
import pytest
import torch
from papercommon import data
from papercommon.data import DataUnavailableError


def test_glove_known_vector():
    vectors, words = data.glove()
    assert vectors.shape == (400_000, 50) and vectors.dtype == np.float32
    assert words[0] == "the"
    np.testing.assert_allclose(vectors[0, :3], [0.418, 0.24968, -0.41242], rtol=1e-5)
    assert data.glove(10)[0].shape == (10, 50)
    with pytest.raises(ValueError, match="n_words"):
        data.glove(0)


def test_word_benchmarks():
    ws, sl = data.wordsim353(), data.simlex999()
    assert len(ws) == 353 and ws[0] == ("love", "sex", 6.77)
    assert len(sl) == 999 and sl[0] == ("old", "new", 1.58)


def test_word_frequencies():
    freq = data.word_frequencies()
    assert len(freq) == 321_180
    assert max(freq, key=freq.get) == "the"


def test_lee_documents():
    docs, sims = data.lee_documents()
    assert len(docs) == 50 and sims.shape == (50, 50)
    assert np.allclose(sims, sims.T) and np.all(np.diag(sims) == 1)
    assert sims[0, 1] == pytest.approx(0.3)
    assert len(sims[np.triu_indices(50, 1)]) == 1225


@pytest.mark.parametrize(("name", "n_train", "shape", "first"), [("digits", 1437, (1, 8, 8), 3), ("mnist5k", 4000, (1, 28, 28), 6)])
def test_image_datasets(name, n_train, shape, first):
    X, y = data.image_dataset(name)
    Xt, yt = data.image_dataset(name, "test")
    assert X.shape == (n_train, *shape) and X.dtype == torch.float32 and y.dtype == torch.long
    assert 0 <= X.min() and X.max() == 1 and y[0] == first
    assert len(X) + len(Xt) == len(data.image_dataset(name, "all")[0])
    assert set(y.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="unknown split"):
        data.image_dataset(name, "val")


def test_image_dataset_unknown():
    with pytest.raises(ValueError, match="expected one of"):
        data.image_dataset("imagenet")


def test_text_corpora_and_tokenizer():
    lee, pydoc = data.text_corpus("lee"), data.text_corpus("pydoc")
    assert len(lee) > 300_000 and lee.startswith("Hundreds of people")
    assert "assert" in pydoc and len(pydoc) > 400_000
    tok = data.CharTokenizer(lee)
    ids = tok.encode(lee[:1000])
    assert tok.decode(ids) == lee[:1000]
    x, y = data.lm_batch(ids, block_size=16, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])
    assert data.word_tokenize("Don't stop, 42 times!") == ["don't", "stop", "42", "times"]
    with pytest.raises(ValueError, match="not in the tokenizer"):
        tok.encode("\u2603")
    with pytest.raises(ValueError, match="expected one of"):
        data.text_corpus("ptb")


def test_download_corpus_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERCOMMON_CACHE", str(tmp_path))
    import urllib.request

    def refuse(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(DataUnavailableError, match="needs a network download"):
        data.text_corpus("tinyshakespeare")


def test_smollm2_real_weights():
    model, tok = data.load_smollm2()
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 576, 9, 3)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        nxt = model(ids).logits[0, -1].argmax()
    assert tok.decode(nxt).strip() == "Paris"


def test_minilm_real_weights():
    model, tok = data.load_minilm()
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    enc = tok(["a cat sits on the mat", "a dog lies on the rug", "stock markets fell sharply"], padding=True,
              return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc.attention_mask[..., None]
    e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    assert e[0] @ e[1] > e[0] @ e[2]  # the pets are closer than the markets
