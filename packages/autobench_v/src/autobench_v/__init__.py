"""autobench_v: AutoBench-V (Bao et al., 2024), on-demand vision-language benchmarks.

A capability goes in; hierarchical aspects, guided image descriptions at three levels, generated and
self-validated images, rebalanced multiple-choice questions, examinee answers and scores come out.
Backends: OpenAI-compatible HTTP (hosted or local servers), local transformers / diffusers models, and an
offline procedural world.

Example:
    >>> from autobench_v import RunConfig, run
    >>> from autobench_v.world_models import procedural_world
    >>> examiner, generator, checker, examinees = procedural_world(quick=True)
    >>> cfg = RunConfig(capabilities=("atmospheric_understanding",), levels=("easy",), n_per_aspect=1)
    >>> scores = run(examiner, generator, examinees, "runs/demo", cfg)  # validator: the examiner's eyes
"""

from autobench_v.backends import (
    DiffusersGenerator,
    OpenAIChat,
    OpenAIImages,
    ProceduralGenerator,
    TransformersVLM,
)
from autobench_v.core import (
    CAPABILITIES,
    MCQ,
    Aspect,
    BackendError,
    Description,
    Examiner,
    ImageGenerator,
    Probe,
    VisionModel,
    extract_choice,
)
from autobench_v.examiner import LLMExaminer, ProceduralExaminer, SemanticGraph
from autobench_v.pipeline import Cache, RunConfig, run, score

__version__ = "0.1.0"
__all__ = [
    "CAPABILITIES", "MCQ", "Aspect", "BackendError", "Cache", "Description", "DiffusersGenerator", "Examiner",
    "ImageGenerator", "LLMExaminer", "OpenAIChat", "OpenAIImages", "Probe", "ProceduralExaminer",
    "ProceduralGenerator", "RunConfig", "SemanticGraph", "TransformersVLM", "VisionModel", "extract_choice", "run",
    "score",
]
