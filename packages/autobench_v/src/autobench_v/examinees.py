"""Offline examinees that really look at the image, and two that expose benchmark flaws.

* :class:`PerceptionExaminee`: a small CNN, trained on separately rendered scenes, reads the picture into
  a scene graph (per grid cell: is there an object, its shape, colour and size; globally: palette and
  light); the question is then answered on *that* scene. Capacity (width, training steps) sets skill.
* :class:`BiasedExaminee`: answers A with a set probability, otherwise defers to another examinee.
* :class:`BlindExaminee`: never sees the image; picks the option whose text was most often correct in
  questions it has seen (a language prior), so it scores above chance only where the text leaks.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
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
    """How a perception examinee is built: its width, training set size, steps and seed."""

    width: int = 4
    train_scenes: int = 2000
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


def train_reader(spec: ReaderSpec, cache_dir=None, progress: bool = False) -> SceneReader:
    """Train (or load from the cache) a scene reader."""
    from papercommon.data import cache_dir as papercommon_cache
    from tqdm.auto import tqdm

    path = Path(cache_dir or papercommon_cache("autobench_v", "readers")) / f"reader-{spec.key()}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    model = SceneReader(spec.width)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    x, t, m = training_set(spec.train_scenes, spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, spec.lr, total_steps=spec.steps)
    g = torch.Generator().manual_seed(spec.seed)
    for _ in tqdm(range(spec.steps), desc=f"train reader w={spec.width}", disable=not progress, leave=False):
        idx = torch.randint(len(x), (spec.batch_size,), generator=g)
        loss = reader_loss(model, x[idx], t[idx], m[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    tmp = path.with_suffix(f".{random.random():.8f}.tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model.eval()


@torch.no_grad()
def perceive(model: SceneReader, image: Image.Image) -> Scene:
    """The scene graph the model reads off an image."""
    img = image.convert("RGB").resize((GRID * 16, GRID * 16))
    cells, mood = model(image_tensor(img)[None])
    ns, nc = len(SHAPES), len(COLORS)
    c = cells[0]
    objs = []
    for r in range(GRID):
        for col in range(GRID):
            if c[0, r, col] > 0:
                objs.append(Obj(SHAPES[int(c[1:1 + ns, r, col].argmax())], COLOR_NAMES[int(c[1 + ns:1 + ns + nc, r, col].argmax())],
                                SIZES[int(c[1 + ns + nc:, r, col].argmax())], r, col))
    palette, light = MOOD_KEYS[int(mood[0].argmax())]
    return Scene(tuple(objs), palette, light)


class PerceptionExaminee:
    """An examinee that reads the image with a trained :class:`SceneReader` and reasons on what it saw.

    Args:
        name: the model's name in reports.
        spec: its capacity and training (see :class:`ReaderSpec`).
    """

    def __init__(self, name: str, spec: ReaderSpec = ReaderSpec(), cache_dir=None, progress: bool = False):
        self.name, self.spec = name, spec
        self.model = train_reader(spec, cache_dir, progress)

    def answer(self, image: Image.Image | None, prompt: str) -> str:
        question, options = parse_prompt(prompt)
        if image is None:
            return "I cannot answer without the image."
        scene = perceive(self.model, image)
        said = solve_question(question, scene, list(options.values()))
        letter = next((k for k, v in options.items() if v == said), None)
        if letter is None:  # what it saw matches no option: a guess, stable for the same prompt
            letter = _stable_rng(self.name, prompt).choice(sorted(options) or list(LETTERS))
        return f"Looking at the picture, the answer is [[{letter}]]."


class BiasedExaminee:
    """Answers A with probability ``p_a`` (stable per prompt), otherwise as ``base`` does."""

    def __init__(self, base, p_a: float = 0.6, name: str | None = None):
        if not 0 <= p_a <= 1:
            raise ValueError(f"p_a must be in [0, 1], got {p_a}")
        self.base, self.p_a = base, p_a
        self.name = name or f"{base.name}+A-bias"

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

    def answer(self, image, prompt: str) -> str:
        _, options = parse_prompt(prompt)
        rng = _stable_rng(self.name, prompt)
        best = max(options, key=lambda k: (self.prior[options[k]], rng.random()))
        return f"Without looking: [[{best}]]"
