"""Command line: ``python -m phinet {train,online,continual,dynamics,reproduce} ...``.

Examples:
    python -m phinet train --model xphinet --data digits --epochs 30 --out runs/x
    python -m phinet train --model phinet --data cifar10 --epochs 800      # the paper's setting (GPU)
    python -m phinet online --model phinet --data mnist5k
    python -m phinet continual --data digits --epochs-per-task 20
    python -m phinet dynamics
    python -m phinet reproduce --quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from phinet.config import MODELS, ModelConfig, TrainConfig
from phinet.data import DATASETS, load_images
from phinet.monitor import CollapseMonitor, HistoryLogger


def _model_cfg(args: argparse.Namespace, X: torch.Tensor) -> ModelConfig:
    c, s = X.shape[1], X.shape[-1]
    if s == 32 and c == 3:
        return ModelConfig(model=args.model, beta=args.beta, sim2_weight=args.sim2_weight)
    return ModelConfig.small(args.model, image_size=s, in_channels=c, beta=args.beta, sim2_weight=args.sim2_weight)


def _train_cfg(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, base_lr=args.base_lr,
                       weight_decay=args.weight_decay, warmup_epochs=min(args.warmup_epochs, args.epochs),
                       seed=args.seed, knn_k=args.knn_k, eval_every=args.eval_every, probe_epochs=args.probe_epochs)


def _plot_history(out: Path, hl: HistoryLogger, cm: CollapseMonitor, healthy: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    ax[0].plot([r["step"] for r in hl.rows], [r["loss"] for r in hl.rows], label="loss")
    ax[0].plot([r["step"] for r in hl.rows], [r["sim1"] for r in hl.rows], label="Sim-1")
    ax[0].plot([r["step"] for r in hl.rows], [r["sim2"] for r in hl.rows], label="Sim-2")
    ax[0].set_xlabel("step")
    ax[0].legend()
    ax[1].plot(*zip(*cm.history), label="std(z/|z|)")
    ax[1].axhline(healthy, ls="--", color="grey", label="1/sqrt(d)")
    ax[1].set_xlabel("step")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=120)
    plt.close(fig)


def cmd_train(args: argparse.Namespace, online: bool = False) -> dict:
    from phinet.train import Trainer

    X, y = load_images(args.data, "train")
    Xt, yt = load_images(args.data, "test")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cm, hl = CollapseMonitor(), HistoryLogger(every=10)
    if args.resume:
        tr = Trainer.load(args.resume, device=args.device, callbacks=[cm, hl])
    else:
        tr = Trainer(_model_cfg(args, X), _train_cfg(args), device=args.device, callbacks=[cm, hl])
    if online:
        tr.fit_online(X[torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(args.seed))])
    else:
        def ckpt(ep: int) -> None:
            if args.ckpt_every and ep % args.ckpt_every == 0:
                tr.save(out / "checkpoint.pt")

        tr.fit(X, eval_fn=lambda ep: tr.evaluate(X, y, Xt, yt), epoch_fn=ckpt)
    tr.save(out / "checkpoint.pt")
    res = {"model_cfg": tr.model_cfg.to_dict(), "train_cfg": tr.cfg.to_dict(), "steps": tr.step,
           "final": tr.evaluate(X, y, Xt, yt, probe=args.probe), "log": tr.log}
    (out / "metrics.json").write_text(json.dumps(res, indent=1))
    _plot_history(out, hl, cm, 1 / tr.model_cfg.proj_dim ** 0.5)
    print(json.dumps(res["final"], indent=1))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m phinet", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "online"):
        p = sub.add_parser(name, help="offline training" if name == "train" else "one pass over a stream")
        p.add_argument("--model", choices=MODELS, default="xphinet")
        p.add_argument("--data", choices=DATASETS, default="digits")
        p.add_argument("--epochs", type=int, default=30)
        p.add_argument("--batch-size", type=int, default=128)
        p.add_argument("--base-lr", type=float, default=0.03)
        p.add_argument("--weight-decay", type=float, default=5e-4)
        p.add_argument("--warmup-epochs", type=float, default=2)
        p.add_argument("--beta", type=float, default=0.99)
        p.add_argument("--sim2-weight", type=float, default=1.0)
        p.add_argument("--seed", type=int, default=1234)
        p.add_argument("--knn-k", type=int, default=200)
        p.add_argument("--eval-every", type=int, default=0)
        p.add_argument("--ckpt-every", type=int, default=0)
        p.add_argument("--probe", action="store_true", help="also run the linear probe at the end")
        p.add_argument("--probe-epochs", type=int, default=100)
        p.add_argument("--resume", default=None,
                       help="checkpoint.pt to start from (weights, optimiser, RNG; the lr schedule restarts)")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--out", default=f"runs/{name}")
    p = sub.add_parser("continual", help="Split tasks in sequence (forgetting)")
    p.add_argument("--full", action="store_true", help="Split CIFAR-10 with the paper's settings")
    p.add_argument("--out", default="runs/continual")
    p = sub.add_parser("dynamics", help="integrate the linear learning dynamics")
    p.add_argument("--full", action="store_true")
    p.add_argument("--sigma2", type=float, default=0.5)
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--out", default="runs/dynamics")
    p = sub.add_parser("reproduce", help="run the registered reproductions (papercommon reproduce phinet)")
    p.add_argument("--full", action="store_true")
    p.add_argument("--only", nargs="*")
    p.add_argument("--out", default="reproductions")
    args = ap.parse_args(argv)

    if args.cmd in ("train", "online"):
        cmd_train(args, online=args.cmd == "online")
    elif args.cmd == "continual":
        from phinet.reproduce import run_continual

        res = run_continual(not args.full, args.out, progress=True)
        print(json.dumps({m: {k: v for k, v in r.items() if k != "per_seed"} for m, r in res["runs"].items()},
                         indent=1))
    elif args.cmd == "dynamics":
        from phinet.reproduce import run_dynamics

        res = run_dynamics(not args.full, args.out, args.sigma2, args.lam)
        print(json.dumps({m: r["frac_collapsed"] for m, r in res["models"].items()}))
    else:
        from papercommon.reproduce import main as pk_main

        return pk_main(["reproduce", "phinet", "--full" if args.full else "--quick", "--out", args.out]
                       + (["--only", *args.only] if args.only else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
