"""Command line: ``python -m phinet {reproduce,list,train,online,continual,weight-decay,dynamics,tables} ...``.

Examples:
    python -m phinet train --model xphinet --data digits --epochs 30 --out runs/x
    python -m phinet train --model phinet --data cifar10 --epochs 800      # the paper's setting (GPU)
    python -m phinet online --model phinet --data mnist5k
    python -m phinet continual --data mnist5k --out runs/c     # Split-MNIST-5k, 3 seeds
    python -m phinet weight-decay --data mnist5k --out runs/w  # the Fig. 6 sweep on MNIST-5k, 3 seeds
    python -m phinet dynamics
    python -m phinet reproduce --quick --seed 0      # = papercommon reproduce phinet --quick
    python -m phinet tables                          # exits 1 if a record is missing or corrupt
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from papercommon.cli import (
    Command,
    add_run_args,
    finite_float,
    nonnegative_int,
    package_main,
    positive_float,
    positive_int,
)
from papercommon.figures import figure
from papercommon.records import write_record

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
    with figure(out / "training.png", ncols=2, figsize=(8, 3)) as ax:
        steps = [r["step"] for r in hl.rows]
        for key, label in (("loss", "loss"), ("sim1", "Sim-1"), ("sim2", "Sim-2")):
            ax[0].plot(steps, [r[key] for r in hl.rows], label=label)
        ax[0].set_xlabel("step")
        ax[1].plot(*zip(*cm.history), label="std(z/|z|)")
        ax[1].axhline(healthy, ls="--", color="grey", label="1/sqrt(d)")
        ax[1].set_xlabel("step")


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
    write_record(out, "metrics", config={"model": tr.model_cfg, "train": tr.cfg}, metrics=res)
    _plot_history(out, hl, cm, 1 / tr.model_cfg.proj_dim ** 0.5)
    print(json.dumps(res["final"], indent=1))
    return res


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODELS, default="xphinet_aug")
    p.add_argument("--data", choices=DATASETS, default="digits")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--base-lr", type=positive_float, default=0.03)
    p.add_argument("--weight-decay", type=finite_float, default=5e-4)
    p.add_argument("--warmup-epochs", type=finite_float, default=2)
    p.add_argument("--beta", type=finite_float, default=0.99)
    p.add_argument("--sim2-weight", type=finite_float, default=1.0)
    p.add_argument("--seed", type=nonnegative_int, default=1234)
    p.add_argument("--knn-k", type=positive_int, default=200)
    p.add_argument("--eval-every", type=nonnegative_int, default=0)
    p.add_argument("--ckpt-every", type=nonnegative_int, default=0)
    p.add_argument("--probe", action="store_true", help="also run the linear probe at the end")
    p.add_argument("--probe-epochs", type=positive_int, default=100)
    p.add_argument("--resume", default=None,
                   help="checkpoint.pt to start from (weights, optimiser, RNG; the lr schedule restarts)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="runs/train", metavar="DIR")


def _seeds(args: argparse.Namespace) -> tuple[int, ...]:
    from phinet.reproduce import _settings

    return tuple(args.seed + s for s in _settings(args.quick, args.data)["seeds"])


def _continual(args: argparse.Namespace) -> None:
    from phinet.reproduce import run_continual

    res = run_continual(args.quick, args.out, seeds=_seeds(args), progress=True, data=args.data)
    print(json.dumps({m: {k: v for k, v in r.items() if k != "per_seed"} for m, r in res["runs"].items()}, indent=1))


def _weight_decay(args: argparse.Namespace) -> None:
    from phinet.reproduce import run_weight_decay

    res = run_weight_decay(args.quick, args.out, seeds=_seeds(args), progress=True, data=args.data)
    print(json.dumps({m: {w: {k: c[k] for k in ("knn_acc", "effective_rank", "collapse_std")} for w, c in r.items()}
                      for m, r in res["runs"].items()}, indent=1))


def _sweep_args(out_default: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        from phinet.reproduce import DATA_SETTINGS

        add_run_args(p, out_default=out_default)
        p.add_argument("--data", choices=DATA_SETTINGS, default=None,
                       help="data set (default: digits with --quick, cifar10 with --full); mnist5k is the same "
                            "CPU setting in both modes, its record and plots go to OUT/mnist5k/")
    return add


def _dynamics(args: argparse.Namespace) -> None:
    from phinet.reproduce import run_dynamics

    res = run_dynamics(args.quick, args.out, args.sigma2, args.lam)
    print(json.dumps({m: r["frac_collapsed"] for m, r in res["models"].items()}))


def _dynamics_args(p: argparse.ArgumentParser) -> None:
    add_run_args(p, out_default="runs/dynamics")
    p.add_argument("--sigma2", type=positive_float, default=0.5)
    p.add_argument("--lam", type=finite_float, default=1.0)


def _tables(args: argparse.Namespace) -> None:
    from phinet.reproduce import results_table

    print(results_table(args.results))


def main(argv: list[str] | None = None) -> int:
    commands = [
        Command("train", "offline training (progress bar, checkpoints, plots)", cmd_train, _train_args),
        Command("online", "one pass over a shuffled stream", lambda a: cmd_train(a, online=True), _train_args),
        Command("continual", "Split tasks in sequence (forgetting), 3 seeds", _continual,
                _sweep_args("runs/continual")),
        Command("weight-decay", "the weight-decay sweep (kNN, effective rank, std gauge), 3 seeds", _weight_decay,
                _sweep_args("runs/weight-decay")),
        Command("dynamics", "integrate the linear learning dynamics", _dynamics, _dynamics_args),
        Command("tables", "the README's reproduction table from the committed records", _tables,
                lambda p: p.add_argument("--results", default=str(Path(__file__).resolve().parents[2] / "results"),
                                         metavar="DIR", help="records folder (default: the package's results/)")),
    ]
    return package_main("phinet", commands, argv, description=__doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
