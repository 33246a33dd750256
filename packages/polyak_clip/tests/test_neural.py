import math

import pytest
import torch
from polyak_clip.neural import NeuralConfig, build, diverged, make_optimizer, span_corrupt, train
from polyak_clip.reproduce import TUNED, neural_claims


def test_config_validation():
    with pytest.raises(ValueError, match="task: expected one of"):
        NeuralConfig(task="resnet")
    with pytest.raises(ValueError, match="steps: expected an int >= 1"):
        NeuralConfig(steps=0)
    cfg = NeuralConfig(task="lstm", steps=7)
    assert NeuralConfig.from_dict(cfg.to_dict()) == cfg


def test_span_corruption_roundtrip():
    toks = torch.arange(40).reshape(2, 20) % 7
    inputs, labels = span_corrupt(toks, vocab=10, n_sentinels=4, generator=torch.Generator().manual_seed(0))
    for b in range(2):
        inp = [t for t in inputs[b].tolist() if t != 10]
        tgt = [t for t in labels[b].tolist() if t != -100]
        # re-insert each sentinel's span: the original sequence comes back
        spans, cur = {}, None
        for t in tgt[:-1]:
            if t >= 12:
                cur = t
                spans[cur] = []
            else:
                spans[cur].append(t)
        rebuilt = [x for t in inp[:-1] for x in (spans[t] if t >= 12 else [t])]
        assert rebuilt == toks[b].tolist()
        assert inp[-1] == 11 and tgt[-1] == 11  # EOS


@pytest.mark.parametrize("task", ["nanogpt", "lstm", "t5"])
def test_models_build_and_step(task):
    if task == "t5":
        pytest.importorskip("transformers")
    cfg = NeuralConfig(task=task, steps=3, batch_size=2, block_size=16, width=16, layers=1, vocab_size=200,
                       eval_batches=1)
    r = train(cfg, "inexact_polyak")
    assert len(r["losses"]) == 3 and math.isfinite(r["val_loss"])
    model, tr, va, batch = build(cfg, 0)
    assert len(tr) > len(va) > 0


def test_nanogpt_init_is_nanogpts():
    cfg = NeuralConfig(task="nanogpt", width=64, layers=2, block_size=32, batch_size=16)
    model, tr, _, batch = build(cfg, 0)
    assert model.head.weight is model.tok.weight  # tied, and initialised with std 0.02 (was N(0, 1))
    assert model.tok.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(4), rel=0.1)
    vocab = model.tok.weight.shape[0]
    first = model(*batch(tr, torch.Generator().manual_seed(0))).item()
    assert first == pytest.approx(math.log(vocab), abs=0.1)  # the first loss is ~ ln(vocab) (was 42.3)


def test_divergence_is_judged_from_the_training_curve():
    assert diverged([7.6, 8.0, 9.0, 12.7])  # ends above its start (the old rule missed this LSTM run)
    assert diverged([4.0, 3.0, float("nan")])
    assert diverged([4.0, 2.0, 2.0, 2.0, 5.0, 5.0, 5.0, 5.0])  # last quarter's mean above the start
    assert not diverged([4.0, 5.0, 3.0, 2.0])  # a transient spike is not divergence
    assert not diverged([4.4, 3.0, 2.5, 2.4])


def _s(mean, std, div=0, n=3):
    return {"val_loss_mean": mean, "val_loss_std": std, "diverged": div, "seeds": n,
            "hyperparameters": {"lr": 0.1, "clip": 1.0}}


def test_every_claim_has_a_verdict_and_respects_the_spread():
    summary = {"lstm": {"inexact_polyak": _s(5.0, 0.05), "polyak": _s(math.inf, 0.0, 3), "decsps": _s(5.3, 0.05),
                        "adasps": _s(5.5, 0.1), "dog": _s(4.9, 0.1), TUNED: _s(4.9, 0.05)},
               "t5": {"inexact_polyak": _s(5.0, 0.2), "polyak": _s(4.5, 0.1), "decsps": _s(5.1, 0.2),
                      "adasps": _s(5.5, 0.1), "dog": _s(4.9, 0.1), TUNED: _s(4.4, 0.05, 1)}}
    claims = {c.metric: c for c in neural_claims(summary)}
    assert all(c.holds is not None for c in claims.values())
    assert claims["lstm: val loss IPS vs best of DecSPS/AdaSPS (decsps)"].holds  # 5.05 < 5.25
    assert not claims["t5: val loss IPS vs best of DecSPS/AdaSPS (decsps)"].holds  # inside the spread
    assert claims["lstm: plain Polyak (f*=0) diverges"].holds
    assert not claims["t5: plain Polyak (f*=0) is the best method"].holds  # tuned SGD is lower
    assert not claims["t5: val loss IPS vs grid-tuned clipped SGD"].holds  # 4.8 > 4.45


def test_make_optimizer_uses_papers_settings():
    p = [torch.nn.Parameter(torch.ones(2))]
    ips = make_optimizer("inexact_polyak", p, steps=77)
    assert ips.param_groups[0]["T"] == 77 and ips.param_groups[0]["lower_bound"] == 0.0
    assert ips.param_groups[0]["track_best"] is False
    with pytest.raises(ValueError, match="needs lr"):
        make_optimizer("clipped_sgd", p, 10)
    with pytest.raises(ValueError, match="unknown method"):
        make_optimizer("adam", p, 10)
