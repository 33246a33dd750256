"""Offline examinees that really look at the image, and two that expose benchmark flaws.

* :class:`PerceptionExaminee`: a small CNN, trained on separately rendered scenes, reads the picture into
  a scene graph (per grid cell: is there an object, its shape, colour and size; globally: palette and
  light); the question is then answered on *that* scene. Capacity (width, training steps) sets skill.
* :class:`BiasedExaminee`: answers A with a set probability, otherwise defers to another examinee.
* :class:`BlindExaminee`: never sees the image; picks the option whose text was most often correct in
  questions it has seen (a language prior), so it scores above chance only where the text leaks.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from papercommon.checks import check_int, check_positive, check_range
from PIL import Image

from autobench_v.core import LETTERS
from autobench_v.questions import solve_question
from autobench_v.world import (
    COLORS,
    GRID,
    LEVELS,
    PALETTES,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    image_tensor,
    random_scene,
    render,
)

_OPTION = re.compile(r"^([A-D])\. (.*)$", re.M)
COLOR_NAMES, MOOD_KEYS = list(COLORS), list(PALETTES)


def parse_prompt(prompt: str) -> tuple[str, dict[str, str]]:
    """Question text and options (letter -> text) of an MCQ prompt."""
    return prompt.strip().split("\n", 1)[0], dict(_OPTION.findall(prompt))


def _stable_rng(*parts) -> random.Random:
    return random.Random(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest())


class SceneReader(nn.Module):
    """A fully convolutional scene parser: 96 x 96 image -> 6 x 6 cells x (object, shape, colour, size),
    plus the background's palette and light."""

    def __init__(self, width: int = 4):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, 4 * w, 3, padding=1), nn.ReLU(),  # edges and colours at full resolution
            nn.Conv2d(4 * w, 8 * w, 4, stride=4), nn.ReLU(),  # (B, 8w, 24, 24)
            nn.Conv2d(8 * w, 8 * w, 4, stride=4), nn.ReLU(),  # one feature per cell: (B, 8w, 6, 6)
            nn.Conv2d(8 * w, 8 * w, 3, padding=1), nn.ReLU(),  # neighbouring cells (objects that spill over)
            nn.Conv2d(8 * w, 4 * w, 1), nn.ReLU(),
        )
        self.cells = nn.Conv2d(4 * w, 1 + len(SHAPES) + len(COLORS) + len(SIZES), 1)
        self.mood = nn.Linear(4 * w, len(PALETTES))

    def forward(self, x):  # x: (B, 3, 96, 96)
        h = self.body(x)  # (B, 4w, 6, 6)
        return self.cells(h), self.mood(h.mean((2, 3)))


_THREADS_LOCK, _THREADS_STATE = threading.Lock(), {"depth": 0, "before": 1}
_INIT_LOCK = threading.Lock()  # seeding torch's global generator and drawing the initial weights, together


@contextmanager
def torch_threads(n: int = 1):
    """Run the enclosed torch work on ``n`` intra-op threads, then restore the previous setting.

    The readers are tiny (a batch of 32 images of 96 x 96): a second intra-op thread buys little on an idle
    machine and costs several times over when the cores are shared (threads spin-waiting on each other);
    two readers training side by side on one thread each use two cores better. Nested and concurrent uses
    (from several Python threads) share one setting: the first in sets it, the last out restores it."""
    with _THREADS_LOCK:
        if _THREADS_STATE["depth"] == 0:
            _THREADS_STATE["before"] = torch.get_num_threads()
            torch.set_num_threads(n)
        _THREADS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["depth"] -= 1
            if _THREADS_STATE["depth"] == 0:
                torch.set_num_threads(_THREADS_STATE["before"])


def scene_targets(scene: Scene) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell targets ``[4, 6, 6]`` (object, shape, colour, size; -1 where empty) and the mood class."""
    t = torch.full((4, GRID, GRID), -1, dtype=torch.long)
    t[0] = 0
    for o in scene.objects:
        t[:, o.row, o.col] = torch.tensor([1, SHAPES.index(o.shape), COLOR_NAMES.index(o.color), SIZES.index(o.size)])
    return t, torch.tensor(MOOD_KEYS.index((scene.palette, scene.light)))


def training_set(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` scenes at all levels rendered from a seed disjoint from the benchmark's."""
    rng = random.Random(f"train/{seed}")
    xs, ts, ms = [], [], []
    for i in range(n):
        scene = random_scene(LEVELS[i % 3], rng)
        xs.append(image_tensor(render(scene)))
        t, m = scene_targets(scene)
        ts.append(t)
        ms.append(m)
    return torch.stack(xs), torch.stack(ts), torch.stack(ms)


def reader_loss(model: SceneReader, x, t, m) -> torch.Tensor:
    cells, mood = model(x)
    ns, nc = len(SHAPES), len(COLORS)
    obj, shape, color, size = cells[:, :1], cells[:, 1:1 + ns], cells[:, 1 + ns:1 + ns + nc], cells[:, 1 + ns + nc:]
    loss = F.binary_cross_entropy_with_logits(obj[:, 0], t[:, 0].float())
    for logits, k in ((shape, 1), (color, 2), (size, 3)):
        loss = loss + F.cross_entropy(logits, t[:, k], ignore_index=-1)
    return loss + F.cross_entropy(mood, m)


@dataclass(frozen=True)
class ReaderSpec:
    """How a perception examinee is built: its width, training set, and the plateau rule that stops training.

    Training runs until the reader's question accuracy on held-out rendered scenes (every capability, every
    level) has not improved by ``min_delta`` for ``patience`` evaluations ``eval_every`` steps apart, or
    ``max_steps``; the best evaluated weights are kept.
    """

    width: int = 4
    train_scenes: int = 2000
    max_steps: int = 3000
    eval_every: int = 100
    patience: int = 3
    min_delta: float = 0.01
    heldout_per_capability: int = 48
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self):
        for k in ("width", "train_scenes", "max_steps", "eval_every", "patience", "heldout_per_capability",
                  "batch_size"):
            check_int(k, getattr(self, k), min_value=1)
        check_range("min_delta", self.min_delta, 0.0, 1.0)
        check_positive("lr", self.lr)

    def key(self) -> str:
        return hashlib.sha256(f"v2/{self!r}".encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def heldout_questions(per_capability: int, seed: int = 777):
    """Questions with their rendered images, per capability, from a seed disjoint from the benchmark's and
    the training set's: ``{capability: [(image_tensor, MCQ), ...]}``, levels and aspects interleaved (built
    once per process and shared by every reader trained on it: treat as read-only)."""
    from autobench_v.core import CAPABILITIES
    from autobench_v.examiner import ProceduralExaminer

    ex, out = ProceduralExaminer(), {}
    for cap in CAPABILITIES:
        rows, aspects = [], ex.aspects(cap)
        for i in range(per_capability):
            a, lv = aspects[i % len(aspects)], LEVELS[(i // len(aspects) + i) % 3]
            for d in ex.describe(a, lv, 1, set(), seed + i):
                rows.append((image_tensor(render(Scene.from_dict(d.scene))), ex.question(d, [], seed)))
        out[cap] = rows
    return out


@torch.no_grad()
def question_accuracy(model: SceneReader, heldout) -> dict[str, float]:
    """Per capability: the fraction of held-out questions answered right from what the reader perceives."""
    model.eval()
    acc = {}
    for cap, rows in heldout.items():
        scenes = perceive_batch(model, torch.stack([x for x, _ in rows]))
        acc[cap] = sum(solve_question(q.question, s, list(q.options.values())) == q.options[q.answer]
                       for s, (_, q) in zip(scenes, rows)) / len(rows)
    model.train()
    return acc


def train_readers(specs, cache_dir=None, progress: bool = False, workers: int = 2) -> list[tuple[SceneReader, dict]]:
    """:func:`train_reader` for several specs, ``workers`` of them side by side (one torch thread each: the
    convolutions release the GIL, so two readers use two cores; each reader's training is unchanged)."""
    from concurrent.futures import ThreadPoolExecutor

    check_int("workers", workers, min_value=1)
    with torch_threads(1), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda s: train_reader(s, cache_dir, progress), specs))


def train_reader(spec: ReaderSpec, cache_dir=None, progress: bool = False) -> tuple[SceneReader, dict]:
    """Train (or load from the cache) a scene reader until its held-out accuracy plateaus.

    Returns the model and its training record: the held-out accuracy curve, the step it stopped at, and the
    final per-capability held-out accuracy."""
    import json

    from papercommon.data import cache_dir as papercommon_cache

    path = Path(cache_dir or papercommon_cache("autobench_v", "readers")) / f"reader-{spec.key()}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _INIT_LOCK:
        torch.manual_seed(spec.seed)
        model = SceneReader(spec.width)
    log = path.with_suffix(".json")
    if path.exists() and log.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), json.loads(log.read_text())
    with torch_threads(1):
        model, record = _fit(model, spec, progress)
    tmp = path.with_suffix(f".{random.random():.8f}.tmp")
    torch.save(model.state_dict(), tmp)
    log.write_text(json.dumps(record, indent=1))
    tmp.replace(path)
    return model.eval(), record


def _fit(model: SceneReader, spec: ReaderSpec, progress: bool) -> tuple[SceneReader, dict]:
    """The training loop of :func:`train_reader` (channels-last layout: about 1.5x faster convolutions on CPU)."""
    from tqdm.auto import tqdm

    x, t, m = training_set(spec.train_scenes, spec.seed)
    x = x.contiguous(memory_format=torch.channels_last)
    heldout = heldout_questions(spec.heldout_per_capability)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    g = torch.Generator().manual_seed(spec.seed)
    curve, best, best_state, stale, step = [], -1.0, None, 0, 0
    bar = tqdm(total=spec.max_steps, desc=f"train reader w={spec.width}", disable=not progress, leave=False)
    while step < spec.max_steps and stale < spec.patience:
        for _ in range(spec.eval_every):
            idx = torch.randint(len(x), (spec.batch_size,), generator=g)
            loss = reader_loss(model, x[idx], t[idx], m[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        step += spec.eval_every
        bar.update(spec.eval_every)
        acc = question_accuracy(model, heldout)
        mean = sum(acc.values()) / len(acc)
        curve.append({"step": step, "heldout_accuracy": mean, "loss": loss.item()})
        if best_state is None or mean > best + spec.min_delta:
            best, best_state, stale, best_acc = mean, {k: v.clone() for k, v in model.state_dict().items()}, 0, acc
        else:
            stale += 1
    bar.close()
    model.load_state_dict(best_state)
    model = model.to(memory_format=torch.contiguous_format)
    record = {"spec": {k: getattr(spec, k) for k in spec.__dataclass_fields__}, "curve": curve,
              "steps": step, "plateaued": stale >= spec.patience, "heldout_accuracy": best,
              "per_capability": best_acc, "heldout_questions": {c: len(r) for c, r in heldout.items()}}
    return model, record


def _decode(cells: torch.Tensor, mood: torch.Tensor) -> Scene:
    ns, nc = len(SHAPES), len(COLORS)
    objs = []
    for r in range(GRID):
        for col in range(GRID):
            if cells[0, r, col] > 0:
                objs.append(Obj(SHAPES[int(cells[1:1 + ns, r, col].argmax())],
                                COLOR_NAMES[int(cells[1 + ns:1 + ns + nc, r, col].argmax())],
                                SIZES[int(cells[1 + ns + nc:, r, col].argmax())], r, col))
    palette, light = MOOD_KEYS[int(mood.argmax())]
    return Scene(tuple(objs), palette, light)


@torch.no_grad()
def perceive_batch(model: SceneReader, x: torch.Tensor) -> list[Scene]:
    """The scene graphs the model reads off a batch ``[B, 3, 96, 96]``."""
    cells, mood = model(x)
    return [_decode(c, md) for c, md in zip(cells, mood)]


@torch.no_grad()
def perceive(model: SceneReader, image: Image.Image) -> Scene:
    """The scene graph the model reads off an image."""
    img = image.convert("RGB").resize((GRID * 16, GRID * 16))
    return perceive_batch(model, image_tensor(img)[None])[0]


class PerceptionExaminee:
    """An examinee that reads the image with a trained :class:`SceneReader` and reasons on what it saw.

    Args:
        name: the model's name in reports.
        spec: its capacity and training (see :class:`ReaderSpec`).
    """

    def __init__(self, name: str, spec: ReaderSpec = ReaderSpec(), cache_dir=None, progress: bool = False):
        self.name, self.spec = name, spec
        self.model, self.training = train_reader(spec, cache_dir, progress)
        self._seen: dict[str, Scene] = {}  # image digest -> what it perceived (four variants share an image)
        self.cache_key = f"{name}?reader={spec.key()}"

    def answer(self, image: Image.Image | None, prompt: str) -> str:
        question, options = parse_prompt(prompt)
        if image is None:
            return "I cannot answer without the image."
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        scene = self._seen.get(digest)
        if scene is None:
            scene = self._seen[digest] = perceive(self.model, image)
        said = solve_question(question, scene, list(options.values()))
        letter = next((k for k, v in options.items() if v == said), None)
        if letter is None:  # what it saw matches no option: a guess, stable for the same prompt
            letter = _stable_rng(self.name, prompt).choice(sorted(options) or list(LETTERS))
        return f"Looking at the picture, the answer is [[{letter}]]."


class BiasedExaminee:
    """Answers A with probability ``p_a`` (stable per prompt), otherwise as ``base`` does."""

    def __init__(self, base, p_a: float = 0.6, name: str | None = None):
        check_range("p_a", p_a, 0.0, 1.0)
        self.base, self.p_a = base, p_a
        self.name = name or f"{base.name}+A-bias"
        self.cache_key = f"{self.name}?p_a={p_a}&base={getattr(base, 'cache_key', base.name)}"

    def answer(self, image, prompt: str) -> str:
        if _stable_rng(self.name, prompt).random() < self.p_a:
            return "[[A]]"
        return self.base.answer(image, prompt)


class BlindExaminee:
    """A text-only examinee with a language prior learned from questions of a separate seed.

    Args:
        prior_questions: MCQs whose correct answers it counts (never the benchmark's own items).
    """

    name = "blind-text-only"

    def __init__(self, prior_questions):
        self.prior = Counter(q.options[q.answer] for q in prior_questions)
        digest = hashlib.sha256(repr(sorted(self.prior.items())).encode()).hexdigest()[:12]
        self.cache_key = f"{self.name}?prior={digest}"

    def answer(self, image, prompt: str) -> str:
        _, options = parse_prompt(prompt)
        rng = _stable_rng(self.name, prompt)
        best = max(options, key=lambda k: (self.prior[options[k]], rng.random()))
        return f"Without looking: [[{best}]]"
