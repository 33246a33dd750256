"""The AutoBench-V pipeline: capability -> aspects -> guided descriptions -> images -> self-validation ->
MCQs -> answer-position rebalancing -> answers in ``[[X]]`` -> scores and the position-bias measure.

Every model call goes through :class:`Cache` (content-addressed files), so a rerun costs nothing and
gives the same benchmark, and an interrupted run resumes where it stopped. Calls run concurrently with
retries; a call that still fails is recorded with its reason, never lost.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from autobench_v.backends import with_retries
from autobench_v.core import CAPABILITIES, LETTERS, MCQ, Aspect, BackendError, Description, extract_choice
from autobench_v.examiner import SemanticGraph
from autobench_v.world import LEVELS

VARIANTS = ("original", "uniform", "allA", "allD")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One benchmark run.

    Args:
        capabilities: the capabilities to test (the paper's five by default).
        levels: difficulty levels (easy, medium, hard).
        n_per_aspect: descriptions per aspect per level (the paper: 10).
        validation_threshold: minimum fraction of probe questions answered correctly for an image to pass
            (the official code's default is 0.0, which keeps every image; 0.8 makes self-validation bite).
        max_regenerations: extra attempts for an image that fails validation (the paper: 3 re-checks).
        rebalance_seed: seed of the uniform answer-position redraw (the official code: 42).
        circular: also evaluate with CircularEval (correct only under all four rotations).
        workers: concurrent model calls.
        retries: retries of a transient failure (with exponential backoff).
        seed: seeds descriptions and questions.
    """

    capabilities: tuple[str, ...] = CAPABILITIES
    levels: tuple[str, ...] = LEVELS
    n_per_aspect: int = 10
    validation_threshold: float = 0.8
    max_regenerations: int = 3
    rebalance_seed: int = 42
    circular: bool = False
    workers: int = 4
    retries: int = 2
    seed: int = 0

    def __post_init__(self):
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad:
            raise ValueError(f"levels must be among {LEVELS}, got {bad}")
        if self.n_per_aspect < 1 or self.workers < 1 or self.max_regenerations < 0:
            raise ValueError("n_per_aspect and workers must be >= 1 and max_regenerations >= 0, got "
                             f"{self.n_per_aspect}, {self.workers}, {self.max_regenerations}")
        if not 0 <= self.validation_threshold <= 1:
            raise ValueError(f"validation_threshold must be in [0, 1], got {self.validation_threshold}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Cache:
    """Content-addressed results of model calls: ``<dir>/<namespace>/<sha256>.json`` (and ``.png``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, namespace: str, key: Any) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        path = self.root / namespace / f"{digest}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def call(self, namespace: str, key: Any, fn, retries: int = 2) -> dict:
        """``fn()`` -> JSON-able dict, cached; failures come back as ``{"error": reason}`` (also cached,
        unless transient, so a rerun retries them). Any other exception a backend raises is a failure of
        that call too: recorded with its type and message, not cached, and the run goes on."""
        path = self._path(namespace, key)
        if path.exists():
            return json.loads(path.read_text())
        try:
            value = with_retries(fn, retries, base_delay=0.5)
        except BackendError as e:
            value = {"error": str(e)}
            if e.transient:
                return value
        except Exception as e:  # noqa: BLE001 - a crashing model must not lose the run
            return {"error": f"{type(e).__name__}: {e}"}
        tmp = path.with_suffix(f".{random.random():.8f}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)
        return value

    def image(self, namespace: str, key: Any, fn, retries: int = 2) -> tuple[Image.Image | None, dict]:
        """A cached image call: the PNG next to a JSON of its ``info`` (or the error)."""

        def make():
            img = fn()
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            png = self._path(namespace, key).with_suffix(".png")
            png.write_bytes(buf.getvalue())
            return {"png": png.name, "info": {k: v for k, v in img.info.items() if isinstance(v, str | int | float)}}

        meta = self.call(namespace, key, make, retries)
        if "error" in meta:
            return None, meta
        return Image.open(self._path(namespace, key).with_suffix(".png")).convert("RGB"), meta


def _map(fn, items, workers: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(fn, items), total=len(items), desc=desc, disable=not progress, leave=False))


def build_items(examiner, generator, validator, cfg: RunConfig, cache: Cache, progress: bool = True) -> dict:
    """Steps 1-8: descriptions, images, self-validation, questions, rebalanced variants."""
    descriptions: list[Description] = []
    for cap in cfg.capabilities:
        aspects = cache.call("aspects", [examiner.name, cap],
                             lambda cap=cap: {"aspects": [asdict(a) for a in examiner.aspects(cap)]}, cfg.retries)
        if "error" in aspects:
            raise BackendError(f"the examiner could not produce aspects for {cap}: {aspects['error']}")
        graph = SemanticGraph()
        for a in (Aspect(**d) for d in aspects["aspects"]):
            for level in cfg.levels:
                used = graph.used_words
                got = cache.call("describe", [examiner.name, asdict(a), level, cfg.n_per_aspect, sorted(used), cfg.seed],
                                 lambda a=a, level=level, used=used: {"items": [d.to_dict() for d in examiner.describe(
                                     a, level, cfg.n_per_aspect, used, cfg.seed)]}, cfg.retries)
                for d in map(Description.from_dict, got.get("items", [])):
                    graph.add(d.topic, d.keywords)
                    descriptions.append(d)

    def image_and_validate(desc: Description) -> dict:
        record = {"id": desc.id, "attempts": []}
        probes = cache.call("probes", [examiner.name, desc.prompt],
                            lambda: {"probes": [asdict(p) for p in examiner.probes(desc)]}, cfg.retries)
        for attempt in range(cfg.max_regenerations + 1):
            img, meta = cache.image("images", [generator.name, desc.prompt, attempt],
                                    lambda attempt=attempt: generator.generate(desc.prompt, attempt), cfg.retries)
            if img is None:
                record["attempts"].append({"error": meta["error"]})
                continue
            correct, wrong = 0, []
            for p in probes.get("probes", []):
                opts = dict(zip(LETTERS, p["options"]))
                prompt = MCQ("", "", "", "", p["question"], opts, "A").prompt()
                reply = cache.call("answers", [validator.name, meta["png"], prompt],
                                   lambda prompt=prompt, img=img: {"reply": validator.answer(img, prompt)}, cfg.retries)
                letter = extract_choice(reply.get("reply"))
                if letter and opts.get(letter) == p["answer"]:
                    correct += 1
                else:
                    wrong.append(p["element"])
            score = correct / max(1, len(probes.get("probes", [])))
            record["attempts"].append({"png": meta["png"], "fault": meta["info"].get("fault", ""), "score": score,
                                       "wrong": wrong})
            if score >= cfg.validation_threshold:
                record.update(passed=True, png=meta["png"], avoid=wrong)
                return record
        record["passed"] = False
        return record

    validated = _map(image_and_validate, descriptions, cfg.workers, "images + validation", progress)
    rng = random.Random(cfg.rebalance_seed)
    items = []
    for desc, val in zip(descriptions, validated):
        if not val.get("passed"):
            continue
        q = cache.call("questions", [examiner.name, desc.prompt, val["avoid"], cfg.seed],
                       lambda desc=desc, val=val: examiner.question(desc, val["avoid"], cfg.seed).to_dict(), cfg.retries)
        if "error" in q:
            val["question_error"] = q["error"]
            continue
        mcq = MCQ(**q)
        # Position-bias mitigation: the correct letter redrawn uniformly (random.choices, weights 0.25, seed 42)
        variants = {"original": mcq, "uniform": mcq.with_answer_at(rng.choices(LETTERS, weights=[0.25] * 4)[0]),
                    "allA": mcq.with_answer_at("A"), "allD": mcq.with_answer_at("D")}
        if cfg.circular:
            variants |= {f"rot{k}": variants["uniform"].rotated(k) for k in range(1, 4)}
        items.append({"id": mcq.id, "png": val["png"], "capability": mcq.capability, "level": mcq.level,
                      "variants": {k: v.to_dict() for k, v in variants.items()}})
    return {"descriptions": len(descriptions), "validation": validated, "items": items}


def answer_items(items: list[dict], examinees, cfg: RunConfig, cache: Cache, progress: bool = True) -> list[dict]:
    """Step 9: every examinee answers every variant of every item (cached, concurrent, failures recorded)."""
    jobs = [(m, it, v) for m in examinees for it in items for v in it["variants"]]

    def ask(job):
        model, item, variant = job
        q = MCQ(**item["variants"][variant])
        prompt = q.prompt()

        def call():
            img = Image.open(cache.root / "images" / item["png"]).convert("RGB")
            return {"reply": model.answer(img, prompt)}

        reply = cache.call("answers", [model.name, item["png"], prompt], call, cfg.retries)
        choice = extract_choice(reply.get("reply"))
        return {"model": model.name, "id": item["id"], "variant": variant, "capability": item["capability"],
                "level": item["level"], "choice": choice, "correct": choice == q.answer,
                "failure": reply.get("error") or (None if choice else "no [[X]] in reply")}

    return _map(ask, jobs, cfg.workers, "answers", progress)


def score(answers: list[dict], cfg: RunConfig) -> dict:
    """Accuracy per model, capability and level (on the rebalanced ``uniform`` variant, or CircularEval),
    the position-bias deviations (acc_allA - acc_uniform) / acc_uniform and the same for D."""
    by = defaultdict(list)
    for a in answers:
        by[(a["model"], a["variant"])].append(a)
    models = sorted({a["model"] for a in answers})
    out: dict = {"models": models, "accuracy": {}, "position_bias": {}, "failures": {}}

    def acc(rows):
        return sum(r["correct"] for r in rows) / len(rows) if rows else float("nan")

    for m in models:
        uni = by[(m, "uniform")]
        if cfg.circular:
            rot = defaultdict(list)
            for v in ("uniform", "rot1", "rot2", "rot3"):
                for r in by[(m, v)]:
                    rot[r["id"]].append(r)
            uni = [dict(rs[0], correct=all(r["correct"] for r in rs)) for rs in rot.values()]
        table = defaultdict(dict)
        for cap in cfg.capabilities:
            for lv in cfg.levels:
                table[cap][lv] = acc([r for r in uni if r["capability"] == cap and r["level"] == lv])
        table["all"] = {lv: acc([r for r in uni if r["level"] == lv]) for lv in cfg.levels}
        table["all"]["overall"] = acc(uni)
        out["accuracy"][m] = dict(table)
        base = acc(by[(m, "uniform")])
        out["position_bias"][m] = {"acc_original": acc(by[(m, "original")]), "acc_uniform": base,
                                   "dev_A": (acc(by[(m, "allA")]) - base) / base if base else float("nan"),
                                   "dev_D": (acc(by[(m, "allD")]) - base) / base if base else float("nan")}
        out["failures"][m] = sum(1 for v in VARIANTS for r in by[(m, v)] if r["failure"])
    return out


def run(examiner, generator, examinees, out_dir: str | Path, cfg: RunConfig = RunConfig(), validator=None,
        cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Run the whole pipeline and write ``items.json``, ``answers.jsonl`` and ``scores.json`` under ``out_dir``.

    Args:
        examiner: an :class:`~autobench_v.core.Examiner`.
        generator: an :class:`~autobench_v.core.ImageGenerator`.
        examinees: :class:`~autobench_v.core.VisionModel` s to benchmark.
        out_dir: output folder (also holds the call cache unless ``cache_dir`` is given).
        validator: the model answering the probe questions (the paper: the examiner's LVLM; default the
            first examinee).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(cache_dir or out / "cache")
    built = build_items(examiner, generator, validator or examinees[0], cfg, cache, progress)
    answers = answer_items(built["items"], examinees, cfg, cache, progress)
    scores = score(answers, cfg)
    val = built["validation"]
    scores["validation"] = validation_stats(val, cfg.validation_threshold)
    meta = {"config": cfg.to_dict(), "examiner": examiner.name, "generator": generator.name,
            "validator": (validator or examinees[0]).name, "examinees": [m.name for m in examinees]}
    (out / "items.json").write_text(json.dumps({"meta": meta, **built}, indent=1))
    (out / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    (out / "scores.json").write_text(json.dumps({"meta": meta, **scores}, indent=1))
    return {"meta": meta, **scores}


def validation_stats(records: list[dict], threshold: float) -> dict:
    """How self-validation treated clean and deliberately corrupted images (first attempts)."""
    first = [r["attempts"][0] for r in records if r["attempts"] and "score" in r["attempts"][0]]
    faulty = [a for a in first if a["fault"]]
    clean = [a for a in first if not a["fault"]]
    return {"descriptions": len(records), "passed": sum(bool(r.get("passed")) for r in records),
            "dropped": sum(not r.get("passed") for r in records),
            "corrupted_first_attempts": len(faulty),
            "corrupted_rejected": sum(a["score"] < threshold for a in faulty) / len(faulty) if faulty else float("nan"),
            "clean_rejected": sum(a["score"] < threshold for a in clean) / len(clean) if clean else float("nan")}
