"""End to end in the procedural world with tiny examinees: caching, resume, failures, scores."""

import json

import pytest
from autobench_v.backends import ProceduralGenerator
from autobench_v.core import BackendError
from autobench_v.examinees import (
    BiasedExaminee,
    BlindExaminee,
    PerceptionExaminee,
    ReaderSpec,
    perceive,
    training_set,
)
from autobench_v.examiner import ProceduralExaminer
from autobench_v.pipeline import RunConfig, run
from autobench_v.report import report
from PIL import Image

TINY = ReaderSpec(width=2, steps=15, train_scenes=48, batch_size=16)




class Flaky:
    """Fails transiently on every call, then never recovers: its failures must be recorded, not raised."""

    name = "flaky"

    def answer(self, image, prompt):
        raise BackendError("503 busy", transient=True)


class NoBrackets:
    name = "chatty"

    def answer(self, image, prompt):
        return "I think it is B."


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    return PerceptionExaminee("reader-tiny", TINY, cache_dir=tmp_path_factory.mktemp("readers"))


def test_training_set_targets():
    x, t, m = training_set(6, seed=0)
    assert x.shape == (6, 3, 96, 96) and t.shape == (6, 4, 6, 6) and m.shape == (6,)
    assert (t[:, 0] == 1).sum() >= 6  # every scene has an object


def test_reader_is_cached(tmp_path, reader):
    cache = tmp_path / "r"
    a = PerceptionExaminee("x", TINY, cache_dir=cache)
    files = list(cache.glob("*.pt"))
    assert len(files) == 1
    b = PerceptionExaminee("y", TINY, cache_dir=cache)  # loads, does not retrain
    img = Image.new("RGB", (96, 96), (200, 100, 50))
    assert perceive(a.model, img) == perceive(b.model, img)


def test_run_end_to_end_and_resume(tmp_path, reader):
    examiner = ProceduralExaminer()
    blind = BlindExaminee([examiner.question(d, [], 99) for d in examiner.describe(
        examiner.aspects("atmospheric_understanding")[0], "easy", 5, set(), 99)])
    models = [reader, BiasedExaminee(reader, p_a=1.0, name="always-A"), blind, Flaky(), NoBrackets()]
    cfg = RunConfig(capabilities=("basic_understanding", "atmospheric_understanding"), n_per_aspect=2,
                    validation_threshold=0.0, workers=2, retries=0)
    scores = run(examiner, ProceduralGenerator(fault_rate=0.5), models, tmp_path, cfg, validator=reader, progress=False)
    assert set(scores["accuracy"]) == {"reader-tiny", "always-A", "blind-text-only", "flaky", "chatty"}
    assert scores["position_bias"]["always-A"]["dev_A"] > 0  # an always-A model gains on all-A questions
    n_items = len(json.loads((tmp_path / "items.json").read_text())["items"])
    assert scores["failures"]["flaky"] == 4 * n_items and scores["failures"]["chatty"] == 4 * n_items
    answers = (tmp_path / "answers.jsonl").read_text().splitlines()
    assert any("503 busy" in a for a in answers) and any("no [[X]]" in a for a in answers)
    # A rerun reads every successful call from the cache: same scores, no model called.
    class Exploding:
        def __init__(self, name):
            self.name = name

        def answer(self, image, prompt):
            raise AssertionError("called a model whose answers are cached")

    again = run(examiner, ProceduralGenerator(fault_rate=0.5), [Exploding("reader-tiny"), Exploding("always-A")],
                tmp_path, cfg, validator=reader, progress=False)
    for m in ("reader-tiny", "always-A"):
        assert again["accuracy"][m] == scores["accuracy"][m]
    md = report(tmp_path)
    assert "| reader-tiny |" in md and (tmp_path / "accuracy_by_level.png").exists()


def test_run_config_validation():
    with pytest.raises(ValueError, match="levels"):
        RunConfig(levels=("trivial",))
    with pytest.raises(ValueError, match="validation_threshold"):
        RunConfig(validation_threshold=2)


def test_crashing_model_is_recorded_not_raised(tmp_path, reader):
    class Crashes:
        name = "crashes"

        def answer(self, image, prompt):
            raise IndexError("list index out of range")

    cfg = RunConfig(capabilities=("spatial_understanding",), levels=("easy",), n_per_aspect=1,
                    validation_threshold=0.0, workers=1, retries=0)
    scores = run(ProceduralExaminer(), ProceduralGenerator(), [reader, Crashes()], tmp_path, cfg, progress=False)
    assert scores["failures"]["crashes"] > 0 and scores["accuracy"]["crashes"]["all"]["overall"] == 0
    assert "IndexError" in (tmp_path / "answers.jsonl").read_text()
