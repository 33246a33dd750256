"""``autobench-v run ...`` and ``autobench-v report DIR``.

    autobench-v run --capability basic_understanding spatial_understanding --examiner procedural \\
        --generator procedural --examinees procedural --out runs/demo
    autobench-v run --capability "understanding of traffic signs" --examiner openai:gpt-4o \\
        --generator openai-images:dall-e-3 --examinees openai:gpt-4o-mini --out runs/api
    autobench-v report runs/demo
"""

from __future__ import annotations

import argparse
import sys

from autobench_v.core import CAPABILITIES


def _generator(spec: str, fault_rate: float):
    from autobench_v.backends import DiffusersGenerator, OpenAIImages, ProceduralGenerator

    if spec == "procedural":
        return ProceduralGenerator(fault_rate=fault_rate)
    if spec.startswith("openai-images:"):
        return OpenAIImages(spec.split(":", 1)[1])
    if spec.startswith("diffusers:"):
        return DiffusersGenerator(spec.split(":", 1)[1])
    raise SystemExit(f"unknown generator {spec!r}; expected procedural, openai-images:<model> or diffusers:<path>")


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
            raise SystemExit(f"unknown examinee {spec!r}; expected procedural, openai:<model> or transformers:<path>")
    return models, world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autobench-v", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="build a benchmark and evaluate examinees on it")
    r.add_argument("--capability", nargs="+", default=list(CAPABILITIES))
    r.add_argument("--examiner", default="procedural", help="procedural | openai:<model>")
    r.add_argument("--generator", default="procedural", help="procedural | openai-images:<model> | diffusers:<path>")
    r.add_argument("--examinees", nargs="+", default=["procedural"],
                   help="procedural (the offline world's examinees) | openai:<model> | transformers:<path>")
    r.add_argument("--validator", help="model answering the probe questions (default: the examiner's checker or the first examinee)")
    r.add_argument("--n", type=int, default=10, help="descriptions per aspect per level")
    r.add_argument("--threshold", type=float, default=0.8, help="self-validation pass threshold")
    r.add_argument("--fault-rate", type=float, default=0.0, help="procedural generator: rate of corrupted images")
    r.add_argument("--circular", action="store_true", help="also CircularEval")
    r.add_argument("--workers", type=int, default=4)
    r.add_argument("--quick", action="store_true", help="procedural world: a smaller prior set for the blind examinee")
    r.add_argument("--out", required=True)
    rep = sub.add_parser("report", help="markdown tables and plots of a run")
    rep.add_argument("out")
    args = parser.parse_args(argv)

    from autobench_v.report import report

    if args.cmd == "report":
        print(report(args.out))
        return 0
    from autobench_v.examiner import examiner_by_name
    from autobench_v.pipeline import RunConfig, run

    examinees, world = _models(args.examinees, args.quick)
    validator = world[2] if world else None
    if args.validator:
        validator = _models([args.validator], args.quick)[0][0]
    cfg = RunConfig(capabilities=tuple(args.capability), n_per_aspect=args.n, validation_threshold=args.threshold,
                    circular=args.circular, workers=args.workers)
    run(examiner_by_name(args.examiner), _generator(args.generator, args.fault_rate), examinees, args.out, cfg,
        validator=validator)
    print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
