"""A small torchvision VisionTransformer on offline MNIST: dense, 2:4, V:2:5 and V:2:8, one-shot and after
SR-STE fine-tuning, with and without the V:N:M channel permutation.

Paper: Sec. 4.1 / Tables 1-2 (DeiT on ImageNet: 64:2:5 lossless after fine-tuning), Sec. 3.1 (mask
diversity predicts accuracy), Sec. 3.2 / Table 6 (permutation helps at low training budgets).
Here: ``papercommon.data.image_dataset("mnist5k")`` (5,000 real MNIST digits, 80/20 split), a 3-layer
ViT (patch 7, width 80, MLP 160) trained from scratch; V in {16, 32} because the layers are 80-240 wide.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from vnm_sparse.config import VNMConfig
from vnm_sparse.functional import importance, mask_diversity, vnm_mask
from vnm_sparse.modules import attach_sr_ste_, finalize_, prunable_weights, prune_, refresh_masks_
from vnm_sparse.permute import permute_model_

SETTINGS = {
    True: {"dense_epochs": 14, "ft_epochs": 1, "seeds": [0], "patterns": [(16, 4), (16, 5), (32, 5), (16, 8), (32, 8)]},
    "seeds3": {"dense_epochs": 14, "ft_epochs": 1, "seeds": [0, 1, 2], "patterns": [(16, 4), (32, 5), (16, 8)]},
    False: {"dense_epochs": 30, "ft_epochs": 6, "seeds": [0, 1, 2],
            "patterns": [(16, 4), (16, 5), (32, 5), (16, 6), (32, 6), (16, 8), (32, 8)]},
}


def make_vit(num_classes: int = 10) -> nn.Module:
    """torchvision's VisionTransformer sized for 28x28 grey images (16 patches of 7x7 + class token)."""
    from torchvision.models import VisionTransformer

    m = VisionTransformer(image_size=28, patch_size=7, num_layers=3, num_heads=4, hidden_dim=80, mlp_dim=160,
                          num_classes=num_classes, dropout=0.0, attention_dropout=0.0)
    m.conv_proj = nn.Conv2d(1, 80, kernel_size=7, stride=7)
    return m


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 500) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + bs]).argmax(-1) == y[i:i + bs]).sum()) for i in range(0, len(x), bs))
    return 100.0 * correct / len(x)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int,
          step_hook=None, bs: int = 128) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(x) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            xb = x[idx]
            # light augmentation: random shifts of up to 2 pixels
            dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
            xb = torch.roll(xb, shifts=(dx, dy), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step_hook is not None:
                step_hook(step)
    model.eval()


def retained_fraction(model: nn.Module, cfg: VNMConfig) -> float:
    """Fraction of the |W| importance kept by the V:N:M masks of all prunable weights."""
    kept, total = 0.0, 0.0
    for _, (mod, pname) in prunable_weights(model).items():
        w = getattr(mod, pname)
        s = importance(w)
        kept += float((s * vnm_mask(w, cfg.v, 2, cfg.m, score=s, exact=cfg.exact, pad=True)).sum())
        total += float(s.sum())
    return kept / total


def run_vit(quick: bool = True, progress: bool = True, data: str = "mnist5k", out=None,
            settings: dict | None = None) -> dict:
    """Train the dense ViT, then prune it to every pattern; returns accuracies per seed and pattern.

    With ``out`` the partial results are written to ``out/vit_partial.json`` after every pattern.
    """
    from papercommon.data import image_dataset
    from tqdm.auto import tqdm

    st = SETTINGS[quick] if settings is None else settings
    xtr, ytr = image_dataset(data, "train")
    xte, yte = image_dataset(data, "test")
    t0 = time.perf_counter()
    res: dict = {"settings": st, "data": data, "runs": []}
    jobs = [(s, p) for s in st["seeds"] for p in st["patterns"]]
    dense_models = {}
    bar = tqdm(jobs, desc="vit", disable=not progress)
    for seed, (v, m) in bar:
        if seed not in dense_models:
            torch.manual_seed(seed)
            dm = make_vit()
            train(dm, xtr, ytr, st["dense_epochs"], 3e-3, seed)
            dense_models[seed] = (dm, evaluate(dm, xte, yte))
        dm, dense_acc = dense_models[seed]
        cfg = VNMConfig(v=v, m=m, pad=True)
        row = {"seed": seed, "v": v, "m": m, "pattern": "2:4" if m == 4 else cfg.name, "dense": dense_acc,
               "mask_diversity": mask_diversity(v, m)}
        row["retained"] = retained_fraction(dm, cfg)
        row["retained_exact"] = retained_fraction(dm, VNMConfig(v=v, m=m, pad=True, exact=True))
        for perm in (False, True):
            mm = copy.deepcopy(dm)
            tag = "perm" if perm else "noperm"
            if perm:
                permute_model_(mm, cfg, iters=2)
                row["retained_perm"] = retained_fraction(mm, cfg)
            one = copy.deepcopy(mm)
            prune_(one, cfg)
            row[f"oneshot_{tag}"] = evaluate(one, xte, yte)
            # SR-STE fine-tuning: mask recomputed from the dense weights every 10 steps
            attach_sr_ste_(mm, cfg, lam=2e-4)
            hook = lambda step, mm=mm: refresh_masks_(mm, cfg) if step % 10 == 0 else None
            train(mm, xtr, ytr, st["ft_epochs"], 1e-3, seed + 100, step_hook=hook)
            finalize_(mm)
            row[f"finetuned_{tag}"] = evaluate(mm, xte, yte)
        res["runs"].append(row)
        bar.set_postfix(pattern=row["pattern"], one=row["oneshot_noperm"], ft=row["finetuned_noperm"])
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "vit_partial.json").write_text(json.dumps(res, indent=1))
    res["seconds"] = time.perf_counter() - t0
    return res
