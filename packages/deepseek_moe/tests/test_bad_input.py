"""Issue 20: bad input gives an error naming the argument (or documented, tested behaviour)."""

import json

import pytest
import torch
from deepseek_moe import load_pretrained, save_pretrained
from deepseek_moe.train import load_checkpoint


def test_all_labels_ignored_raises(tiny_model):
    x = torch.randint(0, 128, (2, 8))
    with pytest.raises(ValueError, match=r"labels: every label is -100"):
        tiny_model(x, labels=torch.full_like(x, -100))


def test_mtp_depth_without_targets_contributes_zero(tiny_model):
    """Only the last label is valid: the MTP target (t_{i+2}) set is empty, its loss is 0, the total finite."""
    x = torch.randint(0, 128, (1, 6))
    labels = torch.full_like(x, -100)
    labels[0, 0] = 7
    out = tiny_model(x, labels=labels, compute_mtp=True)
    assert torch.isfinite(out.loss) and out.mtp_loss.item() == 0.0


@pytest.mark.parametrize("kw, match", [(dict(temperature=-1.0), "temperature"),
                                       (dict(temperature=float("nan")), "temperature"),
                                       (dict(max_new_tokens=-2), "max_new_tokens"),
                                       (dict(max_new_tokens=1000), "max_seq_len")])
def test_generate_bad_arguments(tiny_model, kw, match):
    args = {"max_new_tokens": 3, **kw}
    with pytest.raises(ValueError, match=match):
        tiny_model.generate(torch.tensor([[1, 2]]), **args)
    if "temperature" not in kw:
        with pytest.raises(ValueError, match=match):
            tiny_model.generate_speculative(torch.tensor([[1, 2]]), args["max_new_tokens"])


def test_generate_empty_prompt_and_zero_tokens(tiny_model):
    with pytest.raises(ValueError, match="non-empty"):
        tiny_model.generate(torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="non-empty"):
        tiny_model.generate_speculative(torch.zeros(1, 0, dtype=torch.long), 3)
    p = torch.tensor([[4, 5]])
    assert torch.equal(tiny_model.generate(p, 0), p)
    assert torch.equal(tiny_model.generate_speculative(p, 0)[0], p)


def test_corrupt_config_names_the_file(tmp_path, tiny_model):
    save_pretrained(tiny_model, tmp_path)
    (tmp_path / "config.json").write_text('{"vocab_size": 12')
    with pytest.raises(ValueError, match=r"config\.json.*not valid JSON"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "deepseek_v3"}')
    with pytest.raises(ValueError, match=r"config\.json.*not a DeepSeek-V3 config"):
        load_pretrained(tmp_path)


def test_truncated_shard_names_the_file(tmp_path, tiny_model):
    save_pretrained(tiny_model, tmp_path, max_shard_bytes=100_000)
    shard = sorted(tmp_path.glob("model-*.safetensors"))[1]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=shard.name + ".*truncated"):
        load_pretrained(tmp_path)
    shard.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match=shard.name):
        load_pretrained(tmp_path)
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=shard.name):
        load_pretrained(tmp_path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_training_checkpoint_is_weights_only(tmp_path):
    bad = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "payload": _Evil()}, bad)
    with pytest.raises(ValueError, match=r"ckpt\.pt.*weights-only"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_training_checkpoint_round_trips_weights_only(tmp_path):
    from deepseek_moe.train import TrainConfig, train

    tc = TrainConfig(out=str(tmp_path), steps=2, batch_size=2, block_size=16, eval_every=2, eval_batches=1,
                     ckpt_every=2, progress=False, threads=1)
    train(tc)
    state = load_checkpoint(tmp_path / "ckpt.pt")
    assert json.loads(state["train_config"]) == tc.to_dict() | {"betas": list(tc.betas)}
    assert len(json.loads(state["history"])) == 2 and state["generators"][0].dtype == torch.uint8
