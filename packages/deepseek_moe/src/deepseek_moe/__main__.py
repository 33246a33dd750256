"""``python -m deepseek_moe``: ``reproduce`` / ``list`` (papercommon), ``train`` and ``bench``.

    python -m deepseek_moe train --out runs/tiny --preset tiny --steps 300 --seed 0
    python -m deepseek_moe bench --quick --out bench_out
    python -m deepseek_moe profile          # -> packages/deepseek_moe/results/profile_step.json
    python -m deepseek_moe reproduce --quick --only balance --seed 1
"""

from __future__ import annotations

from papercommon.cli import Command, add_run_args, package_main


def _bench(args) -> int:
    from papercommon.records import render_table

    from deepseek_moe.bench import records

    recs = records(args.quick, only=args.only)
    for r in recs:
        r.save(f"{args.out}/{r.name.replace('/', '_')}.json")
    print(render_table(recs))
    return 0


def _profile(args) -> int:
    import json
    from pathlib import Path

    from deepseek_moe.bench import profile_step

    rec = {"eager": profile_step(), "compiled": profile_step(compiled=True)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "profile_step.json").write_text(json.dumps(rec, indent=2))
    print(json.dumps(rec, indent=2))
    return 0


def _train(args) -> int:
    from deepseek_moe.train import run_train

    return run_train(args)


def _train_args(p) -> None:
    from deepseek_moe.train import add_train_args

    add_train_args(p)


def main(argv=None) -> int:
    return package_main("deepseek_moe", [
        Command("train", "train a small DeepSeek-V3 on an offline corpus (resume, torchrun DDP)", _train, _train_args),
        Command("bench", "CPU benchmark: ours vs transformers DeepseekV3ForCausalLM (same weights)", _bench,
                lambda p: add_run_args(p, out_default="bench_out")),
        Command("profile", "torch.profiler shares of one benchmark AdamW step (eager and compiled)", _profile,
                lambda p: add_run_args(p, out_default="packages/deepseek_moe/results")),
    ], argv, description="DeepSeek-V3 (MLA, DeepSeekMoE, aux-loss-free balancing, MTP, FP8)")


if __name__ == "__main__":
    raise SystemExit(main())
