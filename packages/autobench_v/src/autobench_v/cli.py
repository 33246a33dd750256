"""``python -m autobench_v`` / ``autobench-v``: ``run``, ``report``, plus the shared ``reproduce`` and ``list``.

    autobench-v run --capability basic_understanding spatial_understanding --examiner procedural \\
        --generator procedural --examinees procedural --out runs/demo
    autobench-v run --capability "understanding of traffic signs" --examiner openai:gpt-4o \\
        --generator openai-images:dall-e-3 --examinees openai:gpt-4o-mini --out runs/api
    autobench-v report --out runs/demo
    autobench-v reproduce --quick --out reproductions      # = papercommon reproduce autobench_v --quick
"""

from __future__ import annotations

import argparse
import sys

from papercommon.cli import Command, add_run_args, finite_float, package_main, positive_int

from autobench_v.core import CAPABILITIES


def _generator(spec: str, fault_rate: float, seed: int):
    from autobench_v.backends import DiffusersGenerator, OpenAIImages, ProceduralGenerator

    if spec == "procedural":
        return ProceduralGenerator(fault_rate=fault_rate, seed=seed)
    if spec.startswith("openai-images:"):
        return OpenAIImages(spec.split(":", 1)[1])
    if spec.startswith("diffusers:"):
        return DiffusersGenerator(spec.split(":", 1)[1])
    raise ValueError(f"--generator: expected procedural, openai-images:<model> or diffusers:<path>, got {spec!r}")


def _models(specs: list[str], quick: bool):
    from autobench_v.backends import OpenAIChat, TransformersVLM

    models, world = [], None
    for spec in specs:
        if spec == "procedural":
            from autobench_v.world_models import procedural_world

            world = procedural_world(quick=quick, progress=True)
            models += world[3]
        elif spec.startswith("openai:"):
            models.append(OpenAIChat(spec.split(":", 1)[1]))
        elif spec.startswith("transformers:"):
            models.append(TransformersVLM(spec.split(":", 1)[1]))
        else:
            raise ValueError(f"--examinees: expected procedural, openai:<model> or transformers:<path>, got {spec!r}")
    return models, world


def _run_args(r: argparse.ArgumentParser) -> None:
    add_run_args(r, out_default="runs/autobench_v")
    r.add_argument("--capability", nargs="+", default=list(CAPABILITIES))
    r.add_argument("--examiner", default="procedural", help="procedural | openai:<model>")
    r.add_argument("--generator", default="procedural", help="procedural | openai-images:<model> | diffusers:<path>")
    r.add_argument("--examinees", nargs="+", default=["procedural"],
                   help="procedural (the offline world's examinees) | openai:<model> | transformers:<path>")
    r.add_argument("--validator", help="model answering the probe questions (default: the examiner's own vision model)")
    r.add_argument("--n", type=positive_int, default=10, help="descriptions per aspect per level")
    r.add_argument("--threshold", type=finite_float, default=0.8, help="self-validation pass threshold in [0, 1]")
    r.add_argument("--fault-rate", type=finite_float, default=0.0, help="procedural generator: rate of corrupted images")
    r.add_argument("--circular", action="store_true", help="also CircularEval")
    r.add_argument("--workers", type=positive_int, default=4)


def _run(args: argparse.Namespace) -> int:
    from autobench_v.examiner import ProceduralExaminer, examiner_by_name
    from autobench_v.pipeline import RunConfig, run
    from autobench_v.report import report

    examinees, world = _models(args.examinees, args.quick)
    examiner = examiner_by_name(args.examiner)
    if isinstance(examiner, ProceduralExaminer) and world:
        examiner.eyes = world[2]  # the offline examiner sees with its checker
    validator = _models([args.validator], args.quick)[0][0] if args.validator else None
    cfg = RunConfig(capabilities=tuple(args.capability), n_per_aspect=args.n, validation_threshold=args.threshold,
                    circular=args.circular, workers=args.workers, seed=args.seed)
    run(examiner, _generator(args.generator, args.fault_rate, args.seed), examinees, args.out, cfg,
        validator=validator)
    print(report(args.out))
    return 0


def _report(args: argparse.Namespace) -> int:
    from autobench_v.report import report

    print(report(args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    return package_main("autobench_v", [
        Command("run", "build a benchmark and evaluate examinees on it", _run, _run_args),
        Command("report", "REPORT.md and accuracy_by_level.png of a run (exit 1 if its scores are missing or corrupt)",
                _report, lambda p: p.add_argument("--out", required=True, metavar="DIR", help="the run folder")),
    ], argv, description=__doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
