"""Question types of the procedural world: how each is asked, answered from a scene, and distracted.

The examiner asks with ``template``; a procedural examinee parses the question back with ``regex`` and
answers with ``solve`` on the scene *it perceived*. So examinees share the examiner's reasoning and
differ only in what they see.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from autobench_v.world import COLORS, MOODS, PLACES, SHAPES, Scene


@dataclass(frozen=True)
class QType:
    name: str
    capability: str
    template: str
    make: Callable[[Scene, random.Random, set[str]], dict | None]  # parameters, or None if unaskable
    solve: Callable[[dict, Scene], str]
    domain: Callable[[dict, Scene], list[str]]  # candidate options (the answer among them)

    @functools.cached_property  # built once per question type (solving re-reads every question text)
    def regex(self) -> re.Pattern:
        """The template with each placeholder restricted to its vocabulary (shapes, colours, objects)."""
        pattern = re.escape(self.template)
        for slot, words in _SLOTS.items():
            pattern = pattern.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>{'|'.join(words)})")
        return re.compile("^" + pattern + "$")


_OBJECT_NAMES = [f"{c} {s}" for c in COLORS for s in SHAPES]
_SLOTS = {"shape": SHAPES, "s1": SHAPES, "s2": SHAPES, "color": tuple(COLORS), "a": _OBJECT_NAMES, "b": _OBJECT_NAMES,
          "name": _OBJECT_NAMES}


def _unique(scene: Scene, key) -> list:
    c = Counter(key(o) for o in scene.objects)
    return [o for o in scene.objects if c[key(o)] == 1]


def _pick(items: list, rng: random.Random, avoid: set[str], name=lambda o: o):
    keep = [o for o in items if name(o) not in avoid] or items
    return rng.choice(keep) if keep else None


def _numbers(n: int) -> list[str]:
    return [str(k) for k in range(0, 12)]


def _extreme(s: Scene, key) -> str:
    """The name of the single object minimising ``key`` ("" when tied or empty)."""
    if not s.objects:
        return ""
    ranked = sorted(s.objects, key=key)
    return ranked[0].name if len(ranked) == 1 or key(ranked[0]) < key(ranked[1]) else ""


def _objects_domain(p: dict, s: Scene) -> list[str]:
    names = sorted({o.name for o in s.objects})
    return names + [f"{c} {sh}" for c in COLORS for sh in SHAPES if f"{c} {sh}" not in names]


def _by_name(s: Scene, name: str):
    return next((o for o in s.objects if o.name == name), None)


def _relation(a, b) -> str:
    dr, dc = a.row - b.row, a.col - b.col
    if abs(dc) >= abs(dr):
        return "to the left of" if dc < 0 else "to the right of"
    return "above" if dr < 0 else "below"


def _leftmost(s: Scene) -> str:
    return _extreme(s, lambda o: o.col)


def _topmost(s: Scene) -> str:
    return _extreme(s, lambda o: o.row)


def _rightmost(s: Scene) -> str:
    return _extreme(s, lambda o: -o.col)


def _bottommost(s: Scene) -> str:
    return _extreme(s, lambda o: -o.row)


def _place(s: Scene) -> str:
    score = {p: sum((o.shape, o.color) in sig for o in s.objects) for p, sig in PLACES.items()}
    best = max(score.values())
    top = [p for p, v in score.items() if v == best]
    return top[0] if len(top) == 1 and best > 0 else ""


def _make_place(s, rng, avoid):
    return {} if _place(s) else None


_QTYPE_LIST = [
    # basic understanding: objects, colours, counts
    QType("color_of", "basic_understanding", "What color is the {shape} in the picture?",
          lambda s, rng, av: (o := _pick(_unique(s, lambda o: o.shape), rng, av, lambda o: o.name)) and {"shape": o.shape},
          lambda p, s: next((o.color for o in s.objects if o.shape == p["shape"]), ""),
          lambda p, s: list(COLORS)),
    QType("shape_of", "basic_understanding", "What shape is the {color} object in the picture?",
          lambda s, rng, av: (o := _pick(_unique(s, lambda o: o.color), rng, av, lambda o: o.name)) and {"color": o.color},
          lambda p, s: next((o.shape for o in s.objects if o.color == p["color"]), ""),
          lambda p, s: list(SHAPES)),
    QType("count_shape", "basic_understanding", "How many {shape}s are there in the picture?",
          lambda s, rng, av: {"shape": rng.choice(sorted({o.shape for o in s.objects}))},
          lambda p, s: str(sum(o.shape == p["shape"] for o in s.objects)), lambda p, s: _numbers(12)),
    QType("count_all", "basic_understanding", "How many objects are there in the picture?",
          lambda s, rng, av: {}, lambda p, s: str(len(s.objects)), lambda p, s: _numbers(12)),
    QType("count_color", "basic_understanding", "How many {color} objects are there in the picture?",
          lambda s, rng, av: {"color": rng.choice(sorted({o.color for o in s.objects}))},
          lambda p, s: str(sum(o.color == p["color"] for o in s.objects)), lambda p, s: _numbers(12)),
    QType("count_large", "basic_understanding", "How many large objects are there in the picture?",
          lambda s, rng, av: {} if any(o.size == "large" for o in s.objects) else None,
          lambda p, s: str(sum(o.size == "large" for o in s.objects)), lambda p, s: _numbers(12)),
    # spatial understanding
    QType("leftmost", "spatial_understanding", "Which object is furthest to the left?",
          lambda s, rng, av: {} if len(s.objects) > 1 and _leftmost(s) else None,
          lambda p, s: _leftmost(s), _objects_domain),
    QType("topmost", "spatial_understanding", "Which object is nearest to the top of the picture?",
          lambda s, rng, av: {} if len(s.objects) > 1 and _topmost(s) else None,
          lambda p, s: _topmost(s), _objects_domain),
    QType("rightmost", "spatial_understanding", "Which object is furthest to the right?",
          lambda s, rng, av: {} if len(s.objects) > 1 and _rightmost(s) else None,
          lambda p, s: _rightmost(s), _objects_domain),
    QType("bottommost", "spatial_understanding", "Which object is nearest to the bottom of the picture?",
          lambda s, rng, av: {} if len(s.objects) > 1 and _bottommost(s) else None,
          lambda p, s: _bottommost(s), _objects_domain),
    QType("relation", "spatial_understanding", "Where is the {a} relative to the {b}?",
          lambda s, rng, av: (len(u := _unique(s, lambda o: o.name)) >= 2 or None) and
          dict(zip(("a", "b"), (o.name for o in rng.sample(u, 2)))),
          lambda p, s: (_relation(a, b) if (a := _by_name(s, p["a"])) and (b := _by_name(s, p["b"])) else ""),
          lambda p, s: ["to the left of", "to the right of", "above", "below"]),
    # semantic understanding: what the objects add up to
    QType("place", "semantic_understanding", "What kind of place does this picture show?",
          _make_place, lambda p, s: _place(s), lambda p, s: list(PLACES)),
    QType("presence", "semantic_understanding", "Which of these objects appears in the picture?",
          lambda s, rng, av: {}, lambda p, s: "", _objects_domain),  # answer = an object present (see below)
    # reasoning: several perceptual facts combined
    QType("more_than", "reasoning_capacity", "How many more {s1}s than {s2}s are there?",
          lambda s, rng, av: (len(c := Counter(o.shape for o in s.objects)) >= 1 or None) and
          (lambda a, b: {"s1": a, "s2": b} if c[a] >= c[b] else {"s1": b, "s2": a})(*rng.sample(SHAPES, 2)),
          lambda p, s: str(sum(o.shape == p["s1"] for o in s.objects) - sum(o.shape == p["s2"] for o in s.objects)),
          lambda p, s: _numbers(12)),
    QType("remove_color", "reasoning_capacity", "If every {color} object were removed, how many objects would remain?",
          lambda s, rng, av: {"color": rng.choice(sorted({o.color for o in s.objects}))},
          lambda p, s: str(sum(o.color != p["color"] for o in s.objects)), lambda p, s: _numbers(12)),
    # atmospheric understanding
    QType("mood", "atmospheric_understanding", "What mood does the picture convey?",
          lambda s, rng, av: {}, lambda p, s: s.mood, lambda p, s: list(MOODS.values())),
    QType("lighting", "atmospheric_understanding", "Which words best describe the lighting of the scene?",
          lambda s, rng, av: {}, lambda p, s: f"{s.palette} and {s.light}",
          lambda p, s: [f"{a} and {b}" for a, b in MOODS]),
    # probes of self-validation (asked by the examiner's checker, never in the benchmark)
    QType("probe_color", "probe", "Is there a {color} object in the picture?", lambda s, rng, av: None,
          lambda p, s: "yes" if any(o.color == p["color"] for o in s.objects) else "no", lambda p, s: ["yes", "no"]),
    QType("probe_palette", "probe", "Is the background warm or cool?", lambda s, rng, av: None,
          lambda p, s: s.palette, lambda p, s: ["warm", "cool"]),
]
QTYPES: dict[str, QType] = {q.name: q for q in _QTYPE_LIST}

def _fits(focus: dict, params: dict, answer: str) -> bool:
    return (all(params.get(k) == v for k, v in focus.items() if not k.startswith("answer"))
            and focus.get("answer", answer) == answer and focus.get("answer_has", answer.split()[0]) in answer.split())


def _draw(qtype: QType, scene: Scene, rng: random.Random, avoid: set[str], focus: dict):
    params = qtype.make(scene, rng, avoid)
    if params is None:
        return None
    if qtype.name == "presence":
        present = [o for o in scene.objects if focus.get("answer_has", o.name.split()[0]) in o.name.split()]
        obj = _pick(present, rng, avoid, lambda o: o.name)
        if obj is None:
            return None
        names = {o.name for o in scene.objects}
        return params, obj.name, [x for x in _objects_domain({}, scene) if x not in names]
    answer = qtype.solve(params, scene)
    pool = [x for x in qtype.domain(params, scene) if x != answer]
    if qtype.name in ("leftmost", "topmost", "rightmost", "bottommost"):  # other objects of the scene first
        names = [o.name for o in scene.objects if o.name != answer]
        pool = list(dict.fromkeys(names + pool))[: max(3, len(names))]
    return params, answer, pool


NUMERIC = frozenset({"count_shape", "count_all", "count_color", "count_large", "more_than", "remove_color"})


def numeric_options(answer: int, rank: int) -> list[str]:
    """Four consecutive counts with ``answer`` at position ``rank`` (0 = smallest), shifted up to stay >= 0.

    The examiner draws ``rank`` uniformly, so "pick the middle value" scores chance (nearest-count
    distractors put the answer in the middle far more often than 1 time in 4)."""
    if isinstance(answer, bool) or not isinstance(answer, int) or answer < 0:
        raise ValueError(f"answer: expected a count (int >= 0), got {answer!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= 3:
        raise ValueError(f"rank: expected an int in 0..3, got {rank!r}")
    lo = max(0, answer - rank)
    return [str(v) for v in range(lo, lo + 4)]


def make_question(qtype: QType, scene: Scene, rng: random.Random, avoid: set[str], *,
                  focus: dict | None = None, rank: int | None = None):
    """Parameters, correct answer text and three distractors, or None when the scene cannot support it.

    Args:
        focus: the fine-grained aspect's constraints: parameter values (``{"shape": "circle"}``), the
            answer (``{"answer": "calm"}``) or a word the answer contains (``{"answer_has": "red"}``).
        rank: numeric questions only: where the answer sits among the four counts (0-3, drawn from ``rng``
            when None: uniformly among the ranks the answer allows).
    """
    focus = focus or {}
    for _ in range(64 if focus else 1):  # parameters are drawn at random: draw until they fit the focus
        made = _draw(qtype, scene, rng, avoid, focus)
        if made is None:
            return None
        params, answer, pool = made
        if answer and _fits(focus, params, answer):
            break
    else:
        return None
    if not answer:
        return None
    if qtype.name in NUMERIC:
        a = int(answer)
        if rank is None:
            rank = rng.randrange(min(a, 3) + 1)
        if not 0 <= rank <= 3:
            raise ValueError(f"rank: expected 0..3, got {rank}")
        return params, answer, [x for x in numeric_options(a, rank) if x != answer]
    if len(pool) < 3:
        return None
    return params, answer, rng.sample(pool, 3)


def solve_question(text: str, scene: Scene, options: list[str]) -> str | None:
    """Answer a question of the procedural templates on a (perceived) scene; None if it does not parse."""
    for q in QTYPES.values():
        m = q.regex.match(text.strip())
        if m:
            if q.name == "presence":
                present = {o.name for o in scene.objects}
                return next((o for o in options if o in present), None)
            return q.solve(m.groupdict(), scene) or None
    return None
