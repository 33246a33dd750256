import json
import os
import subprocess
import sys

import pytest
import torch
from deepseek_moe.train import TrainConfig, lr_at, train


def _tc(tmp_path, **kw):
    base = dict(out=str(tmp_path), steps=4, batch_size=4, block_size=32, eval_every=2, eval_batches=1,
                ckpt_every=2, progress=False, warmup=2)
    return TrainConfig(**{**base, **kw})


def test_resume_continues_the_same_loss_curve(tmp_path):
    full = train(_tc(tmp_path / "a"))
    train(_tc(tmp_path / "b", steps=2))
    resumed = train(_tc(tmp_path / "b", resume=True))
    assert [r["loss"] for r in resumed] == [r["loss"] for r in full]
    assert resumed[-1]["val_loss"] == full[-1]["val_loss"]
    assert all("maxvio_batch" in r and "mtp_loss" in r for r in full)
    lines = (tmp_path / "a" / "history.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 4
    assert (tmp_path / "a" / "model" / "model.safetensors").exists()


def test_bias_moves_during_training(tmp_path):
    from deepseek_moe import load_pretrained

    train(_tc(tmp_path, steps=3))
    m = load_pretrained(tmp_path / "model")
    assert float(m.layers[1].mlp.gate.e_score_correction_bias.abs().max()) == pytest.approx(0.003, abs=1e-6)


def test_lr_schedule_and_bad_config():
    tc = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, tc) == pytest.approx(0.1) and lr_at(9, tc) == pytest.approx(1.0)
    assert lr_at(99, tc) == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29561",
           "-m", "deepseek_moe.train", "--out", str(tmp_path), "--steps", "3", "--batch-size", "4", "--block-size",
           "32", "--eval-every", "3", "--eval-batches", "1", "--ckpt-every", "3", "--no-progress"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert len(state["generators"]) == 2 and state["step"] == 3
    hist = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 3 and all(h["loss"] == h["loss"] for h in hist)
