"""The offline procedural world assembled: examiner, renderer, checker and examinees of several capacities."""

from __future__ import annotations

import random

from autobench_v.backends import ProceduralGenerator
from autobench_v.core import CAPABILITIES
from autobench_v.examinees import BiasedExaminee, BlindExaminee, PerceptionExaminee, ReaderSpec
from autobench_v.examiner import ProceduralExaminer
from autobench_v.world import LEVELS

# Examinee capacities: (name, reader spec). Each trains until its held-out accuracy plateaus (cached).
READERS = {
    "reader-large": ReaderSpec(width=4, seed=0),
    "reader-small": ReaderSpec(width=2, seed=0),
    "reader-tiny": ReaderSpec(width=1, seed=0),
}
CHECKER = ReaderSpec(width=4, seed=1)  # the examiner's own eyes, trained apart from the examinees


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

    The readers train until their held-out accuracy plateaus (about a minute on a CPU, then they load from
    the cache), so quick and full share them; ``quick`` only shrinks the blind model's prior set. The
    examiner's eyes (the checker) are its default validator.

    Returns:
        ``(examiner, generator, checker, examinees)`` where the examinees are three perception readers of
        decreasing capacity, the small reader with a 60% preference for A, and a blind text-only model.
    """
    random.seed(seed)
    readers = {name: PerceptionExaminee(name, spec, progress=progress) for name, spec in READERS.items()}
    checker = PerceptionExaminee("examiner-checker", CHECKER, progress=progress)
    examinees = [*readers.values(), BiasedExaminee(readers["reader-small"], p_a=0.6, name="reader-small+A-bias"),
                 BlindExaminee(blind_prior_questions(5 if quick else 20))]
    return ProceduralExaminer(eyes=checker), ProceduralGenerator(fault_rate=fault_rate, seed=seed), checker, examinees
