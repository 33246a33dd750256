import math

import pytest
import torch
from polyak_clip.neural import NeuralConfig, build, make_optimizer, span_corrupt, train


def test_config_validation():
    with pytest.raises(ValueError, match="task must be one of"):
        NeuralConfig(task="resnet")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        NeuralConfig(steps=0)


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
    cfg = NeuralConfig(task=task, steps=3, batch_size=2, block_size=16, width=16, layers=1, vocab_size=200,
                       eval_batches=1)
    r = train(cfg, "inexact_polyak")
    assert len(r["losses"]) == 3 and math.isfinite(r["val_loss"])
    model, tr, va, batch = build(cfg, 0)
    assert len(tr) > len(va) > 0


def test_make_optimizer_uses_papers_settings():
    p = [torch.nn.Parameter(torch.ones(2))]
    ips = make_optimizer("inexact_polyak", p, steps=77)
    assert ips.param_groups[0]["T"] == 77 and ips.param_groups[0]["lower_bound"] == 0.0
    assert ips.param_groups[0]["track_best"] is False
    with pytest.raises(ValueError, match="needs lr"):
        make_optimizer("clipped_sgd", p, 10)
    with pytest.raises(ValueError, match="unknown method"):
        make_optimizer("adam", p, 10)
