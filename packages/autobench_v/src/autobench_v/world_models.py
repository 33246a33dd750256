"""The offline procedural world assembled: examiner, renderer, checker and examinees of several capacities."""

from __future__ import annotations

import random
from dataclasses import replace

from autobench_v.backends import ProceduralGenerator
from autobench_v.core import CAPABILITIES
from autobench_v.examinees import BiasedExaminee, BlindExaminee, PerceptionExaminee, ReaderSpec, train_readers
from autobench_v.examiner import ProceduralExaminer
from autobench_v.world import LEVELS

# Examinee capacities: (name, reader spec). Each trains until its held-out accuracy plateaus (cached).
READERS = {
    "reader-large": ReaderSpec(width=4, seed=0),
    "reader-small": ReaderSpec(width=2, seed=0),
    "reader-tiny": ReaderSpec(width=1, seed=0),
}
CHECKER = ReaderSpec(width=4, seed=1)  # the examiner's own eyes, trained apart from the examinees
# Quick mode: the same readers on a smaller training budget (fewer scenes, at most 250 steps, a smaller held-out
# set), so that training on a cold cache fits the quick reproduction's budget; the plateau rule still applies.
QUICK_TRAINING = {"train_scenes": 600, "max_steps": 250, "eval_every": 50, "patience": 2,
                  "heldout_per_capability": 24}


def reader_specs(quick: bool = False) -> tuple[dict[str, ReaderSpec], ReaderSpec]:
    """The examinee readers and the examiner's checker, on the quick or the full training budget."""
    if not quick:
        return dict(READERS), CHECKER
    return {n: replace(s, **QUICK_TRAINING) for n, s in READERS.items()}, replace(CHECKER, **QUICK_TRAINING)


def blind_prior_questions(n_per_aspect: int = 20, seed: int = 12345):
    """Questions from a seed disjoint from the benchmark's: what the blind model's prior is learned on."""
    ex, qs = ProceduralExaminer(), []
    for cap in CAPABILITIES:
        for a in ex.aspects(cap):
            for lv in LEVELS:
                for d in ex.describe(a, lv, n_per_aspect, set(), seed):  # noqa: B007
                    qs.append(ex.question(d, [], seed))
    return qs


def procedural_world(fault_rate: float = 0.2, quick: bool = False, progress: bool = False, seed: int = 0):
    """Examiner, generator, checker and examinees of the offline world.

    The readers train until their held-out accuracy plateaus (then they load from the cache); ``quick``
    caps their training (``QUICK_TRAINING``: at most 250 steps on 600 scenes, about a CPU-minute for all
    four on a cold cache, two trained side by side) and shrinks the blind model's prior set. The examiner's eyes (the checker) are its
    default validator.

    Returns:
        ``(examiner, generator, checker, examinees)`` where the examinees are three perception readers of
        decreasing capacity, the small reader with a 60% preference for A, and a blind text-only model.
    """
    random.seed(seed)
    specs, checker_spec = reader_specs(quick)
    # Train the four on a cold cache two at a time, widest first (then each examinee loads its reader).
    train_readers(sorted([*specs.values(), checker_spec], key=lambda s: -s.width), progress=progress)
    readers = {name: PerceptionExaminee(name, spec, progress=progress) for name, spec in specs.items()}
    checker = PerceptionExaminee("examiner-checker", checker_spec, progress=progress)
    examinees = [*readers.values(), BiasedExaminee(readers["reader-small"], p_a=0.6, name="reader-small+A-bias"),
                 BlindExaminee(blind_prior_questions(5 if quick else 20))]
    return ProceduralExaminer(eyes=checker), ProceduralGenerator(fault_rate=fault_rate, seed=seed), checker, examinees
