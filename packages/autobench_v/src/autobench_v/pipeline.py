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

from papercommon.checks import check_int, check_range
from papercommon.config import Config
from PIL import Image

from autobench_v.backends import with_retries
from autobench_v.core import CAPABILITIES, LETTERS, MCQ, Aspect, BackendError, Description, extract_choice
from autobench_v.examiner import SemanticGraph
from autobench_v.world import LEVELS

VARIANTS = ("original", "uniform", "allA", "allD")


@dataclass(frozen=True, kw_only=True)
class RunConfig(Config):
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

    capabilities: tuple[str, ...] = CAPABILITIES  # Sec. 3.1: the five capabilities
    levels: tuple[str, ...] = LEVELS  # Sec. 3.2: easy / medium / hard
    n_per_aspect: int = 10  # Sec. 3.2: descriptions per aspect per level (official code: 10)
    validation_threshold: float = 0.8  # Sec. 3.3: probe accuracy needed to pass (official code: 0.0)
    max_regenerations: int = 3  # Sec. 3.3: re-checks of a failing image
    rebalance_seed: int = 42  # Sec. 3.4: seed of the uniform answer-position redraw (official code: 42)
    circular: bool = False  # MMBench CircularEval on top (not in the paper)
    shuffle_control: bool = True  # control: each item answered with another item's image (not in the paper)
    workers: int = 4  # concurrent model calls
    retries: int = 2  # retries of a transient failure
    seed: int = 0  # seeds descriptions and questions

    def validate(self) -> None:
        if not self.capabilities:
            raise ValueError("capabilities: expected at least one capability, got ()")
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad or not self.levels:
            raise ValueError(f"levels: expected a non-empty subset of {LEVELS}, got {self.levels}")
        check_int("n_per_aspect", self.n_per_aspect)
        check_int("workers", self.workers)
        check_int("max_regenerations", self.max_regenerations, min_value=0)
        check_int("retries", self.retries, min_value=0)
        check_int("seed", self.seed, min_value=0)
        check_range("validation_threshold", self.validation_threshold, 0.0, 1.0)


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


def identity(model) -> str:
    """What a model's calls are cached under: its ``cache_key`` (name, endpoint URL, sampling settings,
    weights) when it has one, else its name."""
    return str(getattr(model, "cache_key", None) or model.name)


def default_validator(examiner):
    """The paper's validator: the examiner's own vision model (``examiner.eyes``)."""
    eyes = getattr(examiner, "eyes", None)
    if eyes is None:
        raise ValueError(f"validator: the examiner {examiner.name!r} has no vision model (eyes); pass validator=")
    return eyes


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k / n ((nan, nan) when n = 0)."""
    check_int("n", n, min_value=0)
    check_int("k", k, min_value=0)
    if k > n:
        raise ValueError(f"k: expected at most n = {n}, got {k}")
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    mid, half = p + z * z / (2 * n), z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    lo, hi = (mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n)
    return (0.0 if k == 0 else min(lo, p)), (1.0 if k == n else max(hi, p))  # exact at the ends despite rounding


def _map(fn, items, workers: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(fn, items), total=len(items), desc=desc, disable=not progress, leave=False))


def build_items(examiner, generator, validator, cfg: RunConfig, cache: Cache, progress: bool = True) -> dict:
    """Steps 1-8: descriptions, images, self-validation, questions, rebalanced variants."""
    descriptions: list[Description] = []
    ex_id, gen_id, val_id = identity(examiner), identity(generator), identity(validator)
    for cap in cfg.capabilities:
        aspects = cache.call("aspects", [ex_id, cap],
                             lambda cap=cap: {"aspects": [asdict(a) for a in examiner.aspects(cap)]}, cfg.retries)
        if "error" in aspects:
            raise BackendError(f"the examiner could not produce aspects for {cap}: {aspects['error']}")
        graph = SemanticGraph()
        for a in (Aspect(**d) for d in aspects["aspects"]):
            # Per-aspect guidance (Sec. 3.2): how to draw scenes for this aspect, given to every description.
            g = cache.call("guidance", [ex_id, asdict(a)], lambda a=a: {"guidance": examiner.guidance(a)}, cfg.retries)
            a.guidance = g.get("guidance", "")
            for level in cfg.levels:
                used = graph.used_words
                got = cache.call("describe", [ex_id, asdict(a), level, cfg.n_per_aspect, sorted(used), cfg.seed],
                                 lambda a=a, level=level, used=used: {"items": [d.to_dict() for d in examiner.describe(
                                     a, level, cfg.n_per_aspect, used, cfg.seed)]}, cfg.retries)
                for d in map(Description.from_dict, got.get("items", [])):
                    graph.add(d.topic, d.keywords)
                    descriptions.append(d)

    def image_and_validate(desc: Description) -> dict:
        record = {"id": desc.id, "attempts": []}
        probes = cache.call("probes", [ex_id, desc.prompt],
                            lambda: {"probes": [asdict(p) for p in examiner.probes(desc)]}, cfg.retries)
        for attempt in range(cfg.max_regenerations + 1):
            img, meta = cache.image("images", [gen_id, desc.prompt, attempt],
                                    lambda attempt=attempt: generator.generate(desc.prompt, attempt), cfg.retries)
            if img is None:
                record["attempts"].append({"error": meta["error"]})
                continue
            correct, wrong = 0, []
            for p in probes.get("probes", []):
                opts = dict(zip(LETTERS, p["options"]))
                prompt = MCQ("", "", "", "", p["question"], opts, "A").prompt()
                reply = cache.call("answers", [val_id, meta["png"], prompt],
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
        q = cache.call("questions", [ex_id, desc.prompt, val["avoid"], cfg.seed],
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


def shuffled_images(items: list[dict], seed: int) -> dict[str, str]:
    """The image-shuffle control: item id -> the image of another item (a seeded derangement)."""
    order = list(range(len(items)))
    random.Random(f"shuffle/{seed}").shuffle(order)
    return {items[order[i]]["id"]: items[order[(i + 1) % len(order)]]["png"] for i in range(len(order))
            } if len(items) > 1 else {}


def answer_items(items: list[dict], examinees, cfg: RunConfig, cache: Cache, progress: bool = True) -> list[dict]:
    """Step 9: every examinee answers every variant of every item (cached, concurrent, failures recorded).

    With ``cfg.shuffle_control`` the rebalanced question is also asked with another item's image (variant
    ``shuffled``): an examinee that reads the image scores chance there."""
    other = shuffled_images(items, cfg.seed) if cfg.shuffle_control else {}
    jobs = [(m, it, v) for m in examinees for it in items
            for v in [*it["variants"], *(["shuffled"] if it["id"] in other else [])]]

    def ask(job):
        model, item, variant = job
        q = MCQ(**item["variants"]["uniform" if variant == "shuffled" else variant])
        png = other[item["id"]] if variant == "shuffled" else item["png"]
        prompt = q.prompt()

        def call():
            img = Image.open(cache.root / "images" / png).convert("RGB")
            return {"reply": model.answer(img, prompt)}

        reply = cache.call("answers", [identity(model), png, prompt], call, cfg.retries)
        choice = extract_choice(reply.get("reply"))
        return {"model": model.name, "id": item["id"], "variant": variant, "capability": item["capability"],
                "level": item["level"], "choice": choice, "correct": choice == q.answer,
                "failure": reply.get("error") or (None if choice else "no [[X]] in reply")}

    return _map(ask, jobs, cfg.workers, "answers", progress)


def score(answers: list[dict], cfg: RunConfig) -> dict:
    """Accuracy per model, capability and level (on the rebalanced ``uniform`` variant, or CircularEval),
    each with its item count and 95% Wilson interval (``ci``); the position-bias deviations
    (acc_allA - acc_uniform) / acc_uniform and the same for D; the image-shuffle control."""
    by = defaultdict(list)
    for a in answers:
        by[(a["model"], a["variant"])].append(a)
    models = sorted({a["model"] for a in answers})
    out: dict = {"models": models, "accuracy": {}, "ci": {}, "n": {}, "position_bias": {}, "shuffle_control": {},
                 "failures": {}}

    def acc(rows):
        return sum(r["correct"] for r in rows) / len(rows) if rows else float("nan")

    def ci(rows):
        return list(wilson(sum(r["correct"] for r in rows), len(rows)))

    for m in models:
        uni = by[(m, "uniform")]
        if cfg.circular:
            rot = defaultdict(list)
            for v in ("uniform", "rot1", "rot2", "rot3"):
                for r in by[(m, v)]:
                    rot[r["id"]].append(r)
            uni = [dict(rs[0], correct=all(r["correct"] for r in rs)) for rs in rot.values()]
        cells = {cap: {lv: [r for r in uni if r["capability"] == cap and r["level"] == lv] for lv in cfg.levels}
                 for cap in cfg.capabilities}
        cells["all"] = {lv: [r for r in uni if r["level"] == lv] for lv in cfg.levels} | {"overall": uni}
        out["accuracy"][m] = {c: {lv: acc(rows) for lv, rows in t.items()} for c, t in cells.items()}
        out["ci"][m] = {c: {lv: ci(rows) for lv, rows in t.items()} for c, t in cells.items()}
        out["n"][m] = {c: {lv: len(rows) for lv, rows in t.items()} for c, t in cells.items()}
        base = acc(by[(m, "uniform")])
        out["position_bias"][m] = {"acc_original": acc(by[(m, "original")]), "acc_uniform": base,
                                   "dev_A": (acc(by[(m, "allA")]) - base) / base if base else float("nan"),
                                   "dev_D": (acc(by[(m, "allD")]) - base) / base if base else float("nan")}
        sh = by[(m, "shuffled")]
        out["shuffle_control"][m] = {"accuracy": acc(sh), "ci": ci(sh), "n": len(sh)}
        out["failures"][m] = sum(1 for v in VARIANTS for r in by[(m, v)] if r["failure"])
    return out


def run(examiner, generator, examinees, out_dir: str | Path, cfg: RunConfig = RunConfig(), validator=None,
        cache_dir: str | Path | None = None, progress: bool = True, full_output: bool = True) -> dict:
    """Run the whole pipeline and write ``items.json``, ``answers.jsonl`` and ``scores.json`` under ``out_dir``.

    Args:
        examiner: an :class:`~autobench_v.core.Examiner`.
        generator: an :class:`~autobench_v.core.ImageGenerator`.
        examinees: :class:`~autobench_v.core.VisionModel` s to benchmark.
        out_dir: output folder (also holds the call cache unless ``cache_dir`` is given).
        validator: the model answering the probe questions (default: the examiner's own vision model, as
            in the paper; ``ValueError`` when the examiner has none).
        full_output: write every item and answer (``items.json``, ``answers.jsonl``: large); else only the
            scores and a 200-answer sample (``answers-sample.jsonl``).
    """
    if not examinees:
        raise ValueError("examinees: expected at least one model, got none")
    validator = validator if validator is not None else default_validator(examiner)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(cache_dir or out / "cache")
    built = build_items(examiner, generator, validator, cfg, cache, progress)
    answers = answer_items(built["items"], examinees, cfg, cache, progress)
    scores = score(answers, cfg)
    scores["validation"] = validation_stats(built["validation"], cfg.validation_threshold)
    meta = {"config": cfg.to_dict(), "examiner": identity(examiner), "generator": identity(generator),
            "validator": identity(validator), "examinees": [m.name for m in examinees]}
    if full_output:
        (out / "items.json").write_text(json.dumps({"meta": meta, **built}, indent=1))
    kept = answers if full_output else random.Random(cfg.seed).sample(answers, min(200, len(answers)))
    (out / ("answers.jsonl" if full_output else "answers-sample.jsonl")).write_text(
        "".join(json.dumps(a) + "\n" for a in kept))
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
