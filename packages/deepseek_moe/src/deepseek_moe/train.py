"""Train a small DeepSeek-V3 on an offline corpus: AdamW, aux-loss-free bias balancing, MTP, checkpoints, resume,
and data parallelism through ``torchrun`` (gloo on the CPU, nccl on GPUs).

Usage::

    python -m deepseek_moe.train --out runs/tiny --preset tiny --corpus pydoc --steps 300
    python -m deepseek_moe.train --out runs/tiny --steps 600 --resume          # continues the same curve
    torchrun --nproc-per-node 2 -m deepseek_moe.train --out runs/ddp --steps 100

Each step: forward with labels (LM + lambda * MTP + balance losses), backward, gradient clipping, AdamW,
then ``model.update_expert_bias()`` (expert counts all-reduced over the ranks, ``b_i += gamma * sign(mean - c_i)``).
``history.jsonl`` logs loss, MTP loss, MaxVio of the global batch, learning rate and throughput per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from papercommon.checks import check_int, check_positive
from papercommon.cli import finite_float, nonnegative_int, positive_float, positive_int
from papercommon.config import Config

from deepseek_moe import functional as Fn
from deepseek_moe.checkpoint import save_pretrained
from deepseek_moe.config import DeepSeekV3Config
from deepseek_moe.modules.model import DeepSeekV3


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Config):
    """Training hyper-parameters (AdamW betas, weight decay and clipping from the paper, Sec. 4.2)."""

    out: str = "runs/deepseek_moe"
    preset: str = "tiny"  # model preset; vocab_size is set from the tokenizer
    corpus: str = "pydoc"  # papercommon.data.text_corpus name (offline: "pydoc", "lee")
    steps: int = 300
    batch_size: int = 16  # global batch (split across ranks)
    block_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 30
    weight_decay: float = 0.1  # Sec. 4.2
    betas: tuple[float, float] = (0.9, 0.95)  # Sec. 4.2
    grad_clip: float = 1.0  # Sec. 4.2
    seed: int = 0
    eval_every: int = 100
    eval_batches: int = 8
    ckpt_every: int = 100
    resume: bool = False
    progress: bool = True
    threads: int | None = None  # torch intra-op threads (1 is far faster on an oversubscribed CPU)
    model_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        for name in ["steps", "batch_size", "block_size", "eval_batches", "ckpt_every", "eval_every"]:
            check_int(f"TrainConfig.{name}", getattr(self, name), min_value=1)
        for name in ["warmup", "seed"]:
            check_int(f"TrainConfig.{name}", getattr(self, name), min_value=0)
        check_positive("TrainConfig.lr", self.lr)
        for name in ["weight_decay", "grad_clip", "min_lr_ratio"]:
            check_positive(f"TrainConfig.{name}", getattr(self, name), allow_zero=True)


def load_corpus(name: str, val_frac: float = 0.1):
    """Character-level tokenizer and (train, val) id streams of a ``papercommon.data`` corpus."""
    from papercommon.data import CharTokenizer, text_corpus

    text = text_corpus(name)
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    n = int(len(ids) * (1 - val_frac))
    return tok, ids[:n], ids[n:]


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    t = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def batch_at(ids: torch.Tensor, block: int, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(ids) - block - 1, (batch,), generator=gen)
    off = ix[:, None] + torch.arange(block)
    return ids[off], ids[off + 1]


@torch.no_grad()
def evaluate(model: DeepSeekV3, ids: torch.Tensor, block: int, batches: int, batch_size: int, seed: int = 1234
             ) -> dict[str, float]:
    """Main-head validation loss and global MaxVio (expert loads summed over the held-out batches)."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses, loads = [], None
    for _ in range(batches):
        x, y = batch_at(ids, block, batch_size, gen)
        out = model(x, labels=y, compute_mtp=False)
        losses.append(out.lm_loss.item())
        c = torch.stack([g.last_counts for g in model.gates()[: model.cfg.n_moe_layers]]) \
            if model.cfg.n_moe_layers else None
        loads = c if loads is None else loads + c
    model.train(was)
    res = {"val_loss": sum(losses) / len(losses)}
    if loads is not None:
        res["maxvio_global"] = float(torch.stack([Fn.max_violation(row) for row in loads]).mean())
    return res


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def build_model(tc: TrainConfig, vocab_size: int) -> DeepSeekV3:
    cfg = DeepSeekV3Config.preset(tc.preset, vocab_size=vocab_size, **tc.model_overrides)
    torch.manual_seed(tc.seed)
    return DeepSeekV3(cfg)


def train(tc: TrainConfig) -> list[dict[str, Any]]:
    """Run (or resume) training; returns the per-step history (also written to ``out/history.jsonl``)."""
    rank, world = _dist_info()
    if tc.threads is not None:
        torch.set_num_threads(tc.threads)
    if tc.batch_size % world:
        raise ValueError(f"batch_size={tc.batch_size} must be divisible by the world size {world}")
    out = Path(tc.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    tok, train_ids, val_ids = load_corpus(tc.corpus)
    model = build_model(tc, tok.vocab_size)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=tc.betas)
    gen = torch.Generator().manual_seed(tc.seed * 1000 + rank)
    start, history = 0, []
    ckpt = out / "ckpt.pt"
    if tc.resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        saved_cfg = DeepSeekV3Config.from_dict(json.loads(state["model_config"]))
        if saved_cfg != model.cfg:
            raise ValueError(f"resume: {ckpt} holds model config {saved_cfg} but this run builds {model.cfg}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generators"][rank])
        start, history = int(state["step"]), json.loads(state["history"])
    ddp = model
    if world > 1:
        # Buffers (selection bias) are updated identically on every rank from all-reduced counts: no re-sync.
        import inspect

        sync = ("forward_sync_buffers" if "forward_sync_buffers" in
                inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters else "broadcast_buffers")
        ddp = torch.nn.parallel.DistributedDataParallel(model, **{sync: False})
    model.train()
    local_bs = tc.batch_size // world
    from tqdm.auto import tqdm

    bar = tqdm(range(start, tc.steps), initial=start, total=tc.steps, desc="train",
               disable=not tc.progress or rank != 0)
    for step in bar:
        t0 = time.perf_counter()
        lr = lr_at(step, tc)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch_at(train_ids, tc.block_size, local_bs, gen)
        out_ = ddp(x, labels=y)
        opt.zero_grad(set_to_none=True)
        out_.loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        loads = model.update_expert_bias()  # all-reduced over ranks inside
        stats = torch.tensor([out_.loss.item(), out_.lm_loss.item(),
                              out_.mtp_loss.item() if out_.mtp_loss is not None else float("nan"),
                              out_.aux_loss.item()])
        if world > 1:
            dist.all_reduce(stats)
            stats /= world
        rec = {"step": step + 1, "loss": stats[0].item(), "lm_loss": stats[1].item(), "mtp_loss": stats[2].item(),
               "aux_loss": stats[3].item(), "lr": lr, "grad_norm": float(gnorm),
               "tokens_per_s": tc.batch_size * tc.block_size / (time.perf_counter() - t0)}
        moe_loads = loads[: model.cfg.n_moe_layers]
        if moe_loads:
            rec["maxvio_batch"] = float(torch.stack([Fn.max_violation(c) for c in moe_loads]).mean())
        if (step + 1) % tc.eval_every == 0 or step + 1 == tc.steps:
            rec.update(evaluate(model, val_ids, tc.block_size, tc.eval_batches, local_bs))
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", maxvio=f"{rec.get('maxvio_batch', 0):.2f}")
        if (step + 1) % tc.ckpt_every == 0 or step + 1 == tc.steps:
            _save_ckpt(tc, model, opt, gen, step + 1, history, rank, world)
    if rank == 0:
        with open(out / "history.jsonl", "w") as f:
            for r in history:
                f.write(json.dumps(r) + "\n")
        tc.save(out / "train_config.json")
        save_pretrained(model, out / "model")
    return history


def _save_ckpt(tc, model, opt, gen, step, history, rank, world) -> None:
    gens = [gen.get_state()]
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, gen.get_state())
        gens = gathered
    if rank == 0:
        # Only tensors, numbers and strings: loadable with torch.load(weights_only=True).
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generators": gens, "step": step,
                 "history": json.dumps(history), "model_config": json.dumps(model.cfg.to_dict()),
                 "train_config": json.dumps(tc.to_dict())}
        tmp = Path(tc.out) / "ckpt.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, Path(tc.out) / "ckpt.pt")


def load_checkpoint(path) -> dict[str, Any]:
    """A training checkpoint written by :func:`train`, read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no training checkpoint at {path}") from None
    except Exception as e:  # UnpicklingError (unsafe globals), truncated zip, ...
        raise ValueError(f"{path}: not a loadable weights-only checkpoint ({type(e).__name__}: {e})") from None


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Flags of ``python -m deepseek_moe train`` (shared names ``--out``/``--seed``, papercommon value checks)."""
    d = TrainConfig()
    p.add_argument("--out", default=d.out, metavar="DIR", help=f"run folder (default: {d.out})")
    p.add_argument("--seed", type=nonnegative_int, default=d.seed, metavar="N", help="random seed (default: 0)")
    p.add_argument("--preset", default=d.preset, choices=["tiny", "small"])
    p.add_argument("--corpus", default=d.corpus)
    for name in ["steps", "batch_size", "block_size", "eval_every", "eval_batches", "ckpt_every"]:
        p.add_argument(f"--{name.replace('_', '-')}", type=positive_int, default=getattr(d, name))
    p.add_argument("--warmup", type=nonnegative_int, default=d.warmup)
    p.add_argument("--lr", type=positive_float, default=d.lr)
    for name in ["weight_decay", "grad_clip"]:
        p.add_argument(f"--{name.replace('_', '-')}", type=finite_float, default=getattr(d, name))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--mtp-lambda", type=finite_float, help="MTP loss weight (0 disables MTP)")
    p.add_argument("--n-mtp", type=nonnegative_int, help="MTP depth D")
    p.add_argument("--gamma", type=finite_float, help="bias update rate (0 disables aux-loss-free balancing)")
    p.add_argument("--aux-alpha", type=finite_float, help="classic batch-wise balance loss weight")
    p.add_argument("--seq-alpha", type=finite_float, help="sequence-wise balance loss weight")


def run_train(a: argparse.Namespace) -> int:
    over = {k: v for k, v in {"mtp_lambda": a.mtp_lambda, "n_mtp": a.n_mtp, "bias_update_rate": a.gamma,
                              "aux_loss_alpha": a.aux_alpha, "seq_aux_alpha": a.seq_alpha}.items() if v is not None}
    tc = TrainConfig(out=a.out, preset=a.preset, corpus=a.corpus, steps=a.steps, batch_size=a.batch_size,
                     block_size=a.block_size, lr=a.lr, warmup=a.warmup, weight_decay=a.weight_decay,
                     grad_clip=a.grad_clip, seed=a.seed, eval_every=a.eval_every, eval_batches=a.eval_batches,
                     ckpt_every=a.ckpt_every, resume=a.resume, progress=not a.no_progress, threads=a.threads,
                     model_overrides=over)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = _dist_info()[0]
    try:
        hist = train(tc)
    finally:
        if distributed:
            dist.destroy_process_group()
    if rank == 0 and hist:
        last = hist[-1]
        print(json.dumps({k: last[k] for k in ("step", "loss", "lm_loss", "val_loss", "maxvio_batch") if k in last}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m deepseek_moe.train`` (what ``torchrun -m`` runs): the same flags as ``python -m deepseek_moe train``."""
    p = argparse.ArgumentParser(prog="python -m deepseek_moe.train", description=__doc__.split("\n")[0])
    add_train_args(p)
    return run_train(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
