"""End to end in the procedural world with tiny examinees: caching, resume, failures, scores."""

import json

import pytest
from autobench_v.backends import ProceduralGenerator
from autobench_v.core import MCQ, BackendError
from autobench_v.examinees import (
    BiasedExaminee,
    BlindExaminee,
    PerceptionExaminee,
    ReaderSpec,
    perceive,
    train_reader,
    training_set,
)
from autobench_v.examiner import ProceduralExaminer
from autobench_v.pipeline import RunConfig, run, shuffled_images, wilson
from autobench_v.report import report
from PIL import Image

TINY = ReaderSpec(width=2, max_steps=30, eval_every=15, train_scenes=48, batch_size=16, heldout_per_capability=3)




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
    n_items = len(json.loads((tmp_path / "items.json").read_text())["items"])
    for m in scores["accuracy"]:  # every accuracy carries its item count and a 95% interval around it
        lo, hi = scores["ci"][m]["all"]["overall"]
        assert scores["n"][m]["all"]["overall"] == n_items and lo <= scores["accuracy"][m]["all"]["overall"] <= hi
        assert scores["shuffle_control"][m]["n"] == n_items
    assert set(scores["accuracy"]) == {"reader-tiny", "always-A", "blind-text-only", "flaky", "chatty"}
    assert scores["position_bias"]["always-A"]["dev_A"] > 0  # an always-A model gains on all-A questions
    n_items = len(json.loads((tmp_path / "items.json").read_text())["items"])
    assert scores["failures"]["flaky"] == 4 * n_items and scores["failures"]["chatty"] == 4 * n_items
    answers = (tmp_path / "answers.jsonl").read_text().splitlines()
    assert any("503 busy" in a for a in answers) and any("no [[X]]" in a for a in answers)
    # A rerun reads every successful call from the cache: same scores, no model called.
    class Exploding:
        def __init__(self, model):
            self.name, self.cache_key = model.name, model.cache_key

        def answer(self, image, prompt):
            raise AssertionError("called a model whose answers are cached")

    again = run(examiner, ProceduralGenerator(fault_rate=0.5), [Exploding(models[0]), Exploding(models[1])],
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
    scores = run(ProceduralExaminer(eyes=reader), ProceduralGenerator(), [reader, Crashes()], tmp_path, cfg,
                 progress=False)
    assert scores["failures"]["crashes"] > 0 and scores["accuracy"]["crashes"]["all"]["overall"] == 0
    assert "IndexError" in (tmp_path / "answers.jsonl").read_text()


def test_reader_trains_until_plateau(reader, tmp_path):
    rec = reader.training
    assert set(rec["per_capability"]) == {"basic_understanding", "spatial_understanding", "semantic_understanding",
                                          "reasoning_capacity", "atmospheric_understanding"}
    assert [c["step"] for c in rec["curve"]] == list(range(15, rec["steps"] + 1, 15))
    # no improvement can beat min_delta = 1: training stops after patience evaluations without gain
    spec = ReaderSpec(width=1, max_steps=600, eval_every=10, patience=2, min_delta=1.0, train_scenes=24,
                      batch_size=8, heldout_per_capability=2)
    _, rec = train_reader(spec, tmp_path)
    assert rec["plateaued"] and rec["steps"] == 30 and len(rec["curve"]) == 3


class Spy:
    def __init__(self, name, base):
        self.name, self.base, self.calls = name, base, 0

    def answer(self, image, prompt):
        self.calls += 1
        return self.base.answer(image, prompt)


def test_examiner_eyes_are_the_default_validator(tmp_path, reader):
    eyes, examinee = Spy("eyes", reader), Spy("examinee", reader)
    cfg = RunConfig(capabilities=("atmospheric_understanding",), levels=("easy",), n_per_aspect=1,
                    validation_threshold=0.0, workers=1, shuffle_control=False)
    scores = run(ProceduralExaminer(eyes=eyes), ProceduralGenerator(), [examinee], tmp_path, cfg, progress=False)
    items = json.loads((tmp_path / "items.json").read_text())["items"]
    assert scores["meta"]["validator"] == "eyes" and eyes.calls > 0
    # the examinee answered its own questions and no probe: one call per distinct (image, prompt), since two
    # variants coincide when the redrawn answer position is already A or D
    asked = {(it["png"], MCQ(**v).prompt()) for it in items for v in it["variants"].values()}
    assert len(items) > 0 and examinee.calls == len(asked)
    with pytest.raises(ValueError, match="validator"):
        run(ProceduralExaminer(), ProceduralGenerator(), [examinee], tmp_path / "b", cfg, progress=False)


def test_cache_key_separates_endpoints_and_settings(tmp_path, reader):
    class Keyed(Spy):
        def __init__(self, key):
            super().__init__("same-name", reader)
            self.cache_key = key

    cfg = RunConfig(capabilities=("atmospheric_understanding",), levels=("easy",), n_per_aspect=1,
                    validation_threshold=0.0, workers=1, shuffle_control=False)
    a, b, again = Keyed("m@http://a/v1?temperature=0"), Keyed("m@http://b/v1?temperature=0"), Keyed("m@http://a/v1?temperature=0")
    for m in (a, b, again):
        run(ProceduralExaminer(eyes=reader), ProceduralGenerator(), [m], tmp_path, cfg, progress=False)
    assert a.calls > 0 and b.calls == a.calls and again.calls == 0  # another server is asked; the same is cached


def test_shuffle_control_uses_another_items_image(tmp_path, reader):
    items = [{"id": str(i), "png": f"{i}.png"} for i in range(7)]
    other = shuffled_images(items, seed=3)
    assert set(other) == {it["id"] for it in items} and all(other[i] != f"{i}.png" for i in other)
    assert sorted(other.values()) == sorted(it["png"] for it in items)  # a permutation of the images


def test_wilson_interval():
    lo, hi = wilson(25, 100)
    assert lo == pytest.approx(0.1755, abs=1e-3) and hi == pytest.approx(0.3430, abs=1e-3)
    assert wilson(0, 10)[0] == 0 and wilson(10, 10)[1] == 1


def test_report_cli_fails_on_missing_or_corrupt_scores(tmp_path, capsys):
    from autobench_v.cli import main

    assert main(["report", "--out", str(tmp_path / "none")]) == 1
    (tmp_path / "scores.json").write_text("{not json")
    assert main(["report", "--out", str(tmp_path)]) == 1
    assert "unreadable" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["run", "--n", "0"])
    assert e.value.code == 2


def test_readers_trained_side_by_side_equal_readers_trained_alone(tmp_path):
    """Two readers trained in two threads (the cold-cache path of ``procedural_world``) come out exactly as
    when each is trained alone: same weights, same held-out curve."""
    import torch
    from autobench_v.examinees import train_readers

    specs = [ReaderSpec(width=w, seed=s, max_steps=20, eval_every=10, train_scenes=32, batch_size=8,
                        heldout_per_capability=2) for w, s in ((2, 0), (1, 1))]
    together = train_readers(specs, tmp_path / "together", workers=2)
    for spec, (model, rec) in zip(specs, together):
        alone, alone_rec = train_reader(spec, tmp_path / f"alone-{spec.width}")
        assert alone_rec["curve"] == rec["curve"]
        for (k, a), b in zip(model.state_dict().items(), alone.state_dict().values()):
            assert torch.equal(a, b), k
    assert len(list((tmp_path / "together").glob("*.pt"))) == 2


def test_torch_threads_restores_the_setting_nested_and_concurrent():
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from autobench_v.examinees import torch_threads

    original = torch.get_num_threads()
    torch.set_num_threads(2)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1  # the inner exit leaves the outer setting alone

        def inside(_):
            with torch_threads(1):
                return torch.get_num_threads()

        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(inside, range(4))) == [1] * 4
    restored = torch.get_num_threads()
    torch.set_num_threads(original)
    assert restored == 2
