"""The offline procedural world: an ontology, scene graphs, a text grammar for them and a PIL renderer.

A scene is a grid of cells (6 x 6) each holding at most one object (shape, colour, size) on a background
whose palette (warm / cool) and light (bright / dark) set the mood. Difficulty sets how many objects,
how small, how noisy and how low-contrast the picture is. The examiner writes a scene as an English
description (:func:`describe_scene`); the renderer only sees that text (:func:`parse_description`), as a
text-to-image model would.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

GRID = 6
CELL = 16
SIZE = GRID * CELL  # 96 x 96 pixels
SHAPES = ("circle", "square", "triangle", "diamond")
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 205, 40),
          "purple": (140, 60, 190), "white": (245, 245, 245)}
SIZES = ("small", "large")
PALETTES = {("warm", "bright"): (250, 190, 150), ("warm", "dark"): (110, 50, 30),
            ("cool", "bright"): (160, 205, 245), ("cool", "dark"): (25, 40, 90)}
MOODS = {("warm", "bright"): "cheerful", ("warm", "dark"): "cozy", ("cool", "bright"): "calm",
         ("cool", "dark"): "gloomy"}
# Semantic understanding: a place is recognised by the objects that make it up.
PLACES = {
    "orchard": [("triangle", "green"), ("circle", "red")],
    "harbor": [("square", "blue"), ("triangle", "white")],
    "city": [("square", "purple"), ("square", "yellow")],
    "meadow": [("circle", "yellow"), ("diamond", "green")],
    "festival": [("diamond", "red"), ("circle", "purple")],
}
LEVELS = ("easy", "medium", "hard")
# Per level: object count range, allowed sizes, pixel noise, background contrast, position jitter.
LEVEL_STYLE = {
    "easy": {"n": (1, 2), "sizes": ("large",), "noise": 0.0, "contrast": 1.0, "jitter": 0},
    "medium": {"n": (3, 5), "sizes": ("small", "large"), "noise": 0.08, "contrast": 0.8, "jitter": 2},
    "hard": {"n": (6, 10), "sizes": ("small",), "noise": 0.22, "contrast": 0.55, "jitter": 4},
}


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    size: str
    row: int
    col: int

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    palette: str = "warm"
    light: str = "bright"
    level: str = "easy"
    seed: int = 0
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def mood(self) -> str:
        return MOODS[(self.palette, self.light)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        return cls(**{**d, "objects": tuple(Obj(**o) for o in d["objects"])})


def random_scene(level: str, rng: random.Random, *, must_have: list[tuple[str, str]] = (),
                 avoid_colors: set[str] = frozenset(), n_objects: int | None = None) -> Scene:
    """A random scene at ``level``; ``must_have`` (shape, colour) pairs are placed first."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    style = LEVEL_STYLE[level]
    n = n_objects or rng.randint(*style["n"])
    n = max(n, len(must_have))
    cells = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], n)
    colors = [c for c in COLORS if c not in avoid_colors] or list(COLORS)
    specs = list(must_have) + [(rng.choice(SHAPES), rng.choice(colors)) for _ in range(n - len(must_have))]
    objs = tuple(Obj(s, c, rng.choice(style["sizes"]), r, cc) for (s, c), (r, cc) in zip(specs, cells))
    palette, light = rng.choice(list(PALETTES))
    return Scene(objs, palette, light, level, rng.randrange(2**31))


# ----------------------------------------------------------------------------- grammar
PREFIX = "please generate a picture from the perspective of an observer: "
_OBJ = re.compile(r"an? (small|large) (\w+) (\w+) at row (\d) column (\d)")
_BG = re.compile(r"on a (warm|cool) (bright|dark) background")
_LEVEL = re.compile(r"\[style: (easy|medium|hard); seed (\d+)\]")


def describe_scene(scene: Scene) -> str:
    """The scene as the description the examiner hands to the image generator."""
    objs = ", ".join(f"{'an' if o.size[0] in 'aeiou' else 'a'} {o.size} {o.color} {o.shape} at row {o.row} column {o.col}"
                     for o in scene.objects)
    return (f"{PREFIX}{objs} on a {scene.palette} {scene.light} background "
            f"[style: {scene.level}; seed {scene.seed}]")


def parse_description(text: str) -> Scene:
    """Inverse of :func:`describe_scene`; raises ``ValueError`` on text it cannot draw."""
    objs = tuple(Obj(shape, color, size, int(r), int(c)) for size, color, shape, r, c in _OBJ.findall(text))
    bg, lv = _BG.search(text), _LEVEL.search(text)
    if not objs or bg is None:
        raise ValueError(f"cannot render this description (no objects or no background): {text[:120]!r}")
    for o in objs:
        if o.shape not in SHAPES or o.color not in COLORS or not (0 <= o.row < GRID and 0 <= o.col < GRID):
            raise ValueError(f"unknown object in description: {o}")
    level, seed = (lv.group(1), int(lv.group(2))) if lv else ("easy", 0)
    return Scene(objs, bg.group(1), bg.group(2), level, seed)


# ----------------------------------------------------------------------------- renderer
def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:  # diamond
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)


def render(scene: Scene) -> Image.Image:
    """Draw a scene: background by palette and light (contrast by level), objects, then pixel noise."""
    style = LEVEL_STYLE[scene.level]
    rng = np.random.default_rng(scene.seed)
    bg = np.array(PALETTES[(scene.palette, scene.light)], dtype=float)
    bg = 128 + (bg - 128) * style["contrast"]
    img = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        j = style["jitter"]
        cx = o.col * CELL + CELL / 2 + (rng.integers(-j, j + 1) if j else 0)
        cy = o.row * CELL + CELL / 2 + (rng.integers(-j, j + 1) if j else 0)
        _draw_shape(draw, o.shape, cx, cy, 4.0 if o.size == "small" else 7.0, COLORS[o.color])
    arr = np.asarray(img, dtype=float)
    if style["noise"]:
        arr = arr + rng.normal(0, 255 * style["noise"], arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def corrupt(scene: Scene, rng: random.Random) -> tuple[Scene, str]:
    """A renderer fault: recolour or drop an object, or flip the mood. Returns the scene and the fault."""
    kind = rng.choice(["recolor", "drop", "mood"] if len(scene.objects) > 1 else ["recolor", "mood"])
    objs = list(scene.objects)
    if kind == "recolor":
        i = rng.randrange(len(objs))
        objs[i] = replace(objs[i], color=rng.choice([c for c in COLORS if c != objs[i].color]))
        return replace(scene, objects=tuple(objs)), f"recolored object {i}"
    if kind == "drop":
        i = rng.randrange(len(objs))
        return replace(scene, objects=tuple(objs[:i] + objs[i + 1:])), f"dropped object {i}"
    return replace(scene, palette="cool" if scene.palette == "warm" else "warm",
                   light="dark" if scene.light == "bright" else "bright"), "flipped the mood"


def image_tensor(img: Image.Image):
    """``[3, H, W]`` float tensor in [0, 1]."""
    import torch

    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
