"""Examiners: the rule-based procedural one, an LLM one over any chat backend, and the semantic graph.

The procedural examiner follows the official pipeline step by step with an ontology in place of GPT-4o:
capability -> general aspects -> fine-grained aspects (each a question type) -> guided descriptions
(scene graphs written as text) -> TIFA-style probes -> a four-option MCQ whose correct answer it places
with a first-position preference, as LLM examiners do (``a_preference``), so that rebalancing matters.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace

import networkx as nx
from papercommon.checks import check_int, check_range

from autobench_v.core import LETTERS, MCQ, Aspect, BackendError, Description, Probe
from autobench_v.questions import NUMERIC, QTYPES, make_question
from autobench_v.world import COLORS, LEVEL_STYLE, MOODS, PLACES, SHAPES, Scene, describe_scene, random_scene

_C, _S, _M, _P = list(COLORS), list(SHAPES), list(MOODS.values()), list(PLACES)


_VOCAB = {*COLORS, *SHAPES, *MOODS.values(), "warm", "cool", "bright", "dark"}
_MOOD_OF = {m: k for k, m in MOODS.items()}
_INCLUDE = re.compile(r"include: ([^.]*)\.")


def _fine(qtype: str, key: str, values, label: str) -> list[tuple[str, str, dict]]:
    return [(label.format(v=v), qtype, {key: v}) for v in values]


# capability -> general aspect -> fine-grained aspects (name, question type, focus). The paper asks the
# examiner for 4 general x 6 fine-grained aspects (reasoning 4 x 5); here each fine-grained aspect narrows a
# question type to one colour, shape, place, mood or relation (see ``make_question(focus=...)``).
ONTOLOGY: dict[str, dict[str, list[tuple[str, str, dict]]]] = {
    "basic_understanding": {
        "colour recognition": _fine("color_of", "answer", _C, "colour of a single shape ({v})"),
        "shape recognition": _fine("shape_of", "color", _C, "shape of the {v} object"),
        "counting by shape": _fine("count_shape", "shape", _S, "counting {v}s")
        + [("counting all objects", "count_all", {}), ("counting large objects", "count_large", {})],
        "counting by colour": _fine("count_color", "color", _C, "counting {v} objects"),
    },
    "spatial_understanding": {
        "leftmost object": _fine("leftmost", "answer_has", _C, "leftmost object ({v})"),
        "topmost object": _fine("topmost", "answer_has", _C, "topmost object ({v})"),
        "rightmost and bottommost object": _fine("rightmost", "answer_has", _S, "rightmost object ({v})")
        + _fine("bottommost", "answer_has", _S, "bottommost object ({v})"),
        "relative position": _fine("relation", "answer", ["to the left of", "to the right of", "above", "below"],
                                   "one object {v} another"),
    },
    "semantic_understanding": {
        "scene category": _fine("place", "answer", _P, "a {v} from its objects") + [("any place", "place", {})],
        "object presence by colour": _fine("presence", "answer_has", _C, "a {v} object that is present"),
        "object presence by shape": _fine("presence", "answer_has", _S, "a {v} that is present"),
    },
    "reasoning_capacity": {
        "comparison of counts": _fine("more_than", "s1", _S, "how many more {v}s than another shape"),
        "comparison against a shape": _fine("more_than", "s2", _S, "how many more of another shape than {v}s"),
        "counterfactual removal": _fine("remove_color", "color", _C, "count after removing the {v} objects"),
    },
    "atmospheric_understanding": {
        "emotional tone": _fine("mood", "answer", _M, "a {v} mood"),
        "lighting": _fine("lighting", "answer", [f"{a} and {b}" for a, b in MOODS], "{v} light"),
        "warmth": _fine("lighting", "answer_has", ["warm", "cool"], "a {v} palette"),
        "brightness": _fine("lighting", "answer_has", ["bright", "dark"], "a {v} light level"),
    },
}


class SemanticGraph:
    """The paper's diversity constraint: a graph linking each description's topic word to its key words.

    After round r, the r + 1 highest-degree nodes become ``used_words``, which the next descriptions are
    told to avoid.
    """

    def __init__(self):
        self.graph = nx.Graph()
        self.rounds = 0

    def add(self, topic: str, keywords: list[str]) -> None:
        self.graph.add_edges_from((topic, k) for k in keywords if k != topic)
        self.rounds += 1

    @property
    def used_words(self) -> set[str]:
        ranked = sorted(self.graph.degree, key=lambda nd: (-nd[1], nd[0]))
        return {n for n, _ in ranked[: self.rounds + 1]} if self.rounds else set()


def _check_capability(capability: str, known) -> None:
    if capability not in known:
        raise ValueError(f"unknown capability {capability!r}; expected one of {sorted(known)} "
                         "(or describe a new one to an LLM examiner)")


class ProceduralExaminer:
    """The offline examiner over the procedural world's ontology.

    Args:
        a_preference: probability of placing the correct answer at A before rebalancing (LLM examiners
            favour early positions; 0.25 is unbiased).
        eyes: the examiner's own vision model, which answers the self-validation probes (the paper: GPT-4o).
    """

    name = "procedural-examiner"

    def __init__(self, a_preference: float = 0.55, eyes=None):
        self.a_preference = check_range("a_preference", a_preference, 0.0, 1.0)
        self.eyes = eyes  # the examiner's vision model: the default validator of self-validation

    @property
    def cache_key(self) -> str:
        return f"{self.name}?a_preference={self.a_preference}"

    def aspects(self, capability: str) -> list[Aspect]:
        _check_capability(capability, ONTOLOGY)
        return [Aspect(capability, general, name, f"Questions about the {name}.", qtype, dict(focus))
                for general, fine in ONTOLOGY[capability].items() for name, qtype, focus in fine]

    def guidance(self, aspect: Aspect) -> str:
        """The paper's per-aspect guidance: how to draw scenes that test this aspect. ``describe`` follows
        its ``include:`` list (colours, shapes, places, palette and light words put into every scene)."""
        f = aspect.focus
        words = [f[k] for k in ("answer", "answer_has", "color", "shape", "s1", "s2") if isinstance(f.get(k), str)]
        include = [w for part in words for w in part.split(" and ") if w in _VOCAB]
        if aspect.qtype == "place" and f.get("answer") in PLACES:
            include = [f"{c} {s}" for s, c in PLACES[f["answer"]]]
        line = f"Draw scenes that test the {aspect.name}; keep the relevant objects unambiguous (unique, apart)."
        return line + (f" include: {', '.join(include)}." if include else "")

    def describe(self, aspect: Aspect, level: str, n: int, used_words: set[str], seed: int) -> list[Description]:
        """``n`` scenes at ``level`` that support the aspect's question, following its guidance. Numeric
        questions get the least-used rank (0-3) of the answer among the four counts, so that "pick the middle
        value" scores chance; a scene whose answer is too small for the least-used rank is redrawn (up to 25
        times, then the least-used rank the answer allows is taken: easy scenes hold 1-2 objects, so ranks 0-2)."""
        if level not in LEVEL_STYLE:
            raise ValueError(f"level must be one of {tuple(LEVEL_STYLE)}, got {level!r}")
        rng = random.Random(f"{seed}/{aspect.name}/{level}")
        include = _INCLUDE.search(aspect.guidance or self.guidance(aspect))
        include = [w.strip() for w in include.group(1).split(",")] if include else []
        qtype = QTYPES[aspect.qtype]
        numeric = qtype.name in NUMERIC
        used = [0, 0, 0, 0]  # how often each rank of the answer has been used in this batch
        out, tries, misses = [], 0, 0
        while len(out) < n and tries < 50 * n:
            tries += 1
            scene = self._scene(level, rng, aspect, include, used_words)
            made = make_question(qtype, scene, random.Random(0), set(), focus=aspect.focus, rank=0 if numeric else None)
            if made is None:
                continue  # the scene cannot support this aspect's question
            if numeric:
                if made[1] == "0":
                    continue  # a zero count can only be the smallest option: never asked
                a = min(int(made[1]), 3)
                if min(used[: a + 1]) > min(used) and misses < 25:
                    misses += 1  # the answer is too small for the least-used rank: draw another scene
                    continue
                low = min(used[: a + 1])
                rank = rng.choice([k for k in range(a + 1) if used[k] == low])
                used[rank] += 1
                scene = replace(scene, meta={"rank": rank})
                misses = 0
            topic = scene.objects[0].name
            keywords = sorted({o.color for o in scene.objects} | {o.shape for o in scene.objects} | {scene.mood})[:6]
            out.append(Description(f"{aspect.capability}/{aspect.name}/{level}/{len(out)}-{seed}", aspect.capability,
                                   aspect, level, describe_scene(scene), topic, keywords, scene.to_dict()))
        return out

    @staticmethod
    def _scene(level: str, rng: random.Random, aspect: Aspect, include: list[str], used_words: set[str]) -> Scene:
        must = []
        if aspect.qtype == "place" and not aspect.focus:
            must = [rng.choice(PLACES[rng.choice(sorted(PLACES))]) for _ in range(2)]
        for w in include:
            if " " in w:  # "red circle"
                c, sh = w.split()
                must.append((sh, c))
            elif w in COLORS:
                must.append((rng.choice(SHAPES), w))
            elif w in SHAPES:
                must.append((w, rng.choice(list(COLORS))))
        scene = random_scene(level, rng, must_have=must[: LEVEL_STYLE[level]["n"][1]],
                             avoid_colors=used_words & set(COLORS))
        for w in include:
            if w in ("warm", "cool"):
                scene = replace(scene, palette=w)
            elif w in ("bright", "dark"):
                scene = replace(scene, light=w)
            elif w in _MOOD_OF:
                scene = replace(scene, palette=_MOOD_OF[w][0], light=_MOOD_OF[w][1])
        return scene

    def probes(self, desc: Description) -> list[Probe]:
        """TIFA-style probes: each colour the description asks for (yes), one it does not (no), the object
        count and the background's warmth."""
        scene = Scene.from_dict(desc.scene)
        rng = random.Random(desc.id)
        present = sorted({o.color for o in scene.objects})
        probes = [Probe(f"Is there a {c} object in the picture?", ["yes", "no"], "yes", "color", c) for c in present[:4]]
        absent = rng.choice([c for c in COLORS if c not in present])
        probes.append(Probe(f"Is there a {absent} object in the picture?", ["yes", "no"], "no", "color", absent))
        n = len(scene.objects)
        counts = [str(k) for k in sorted({n, n + 1, max(n - 1, 0), n + 2, max(n - 2, 0)})][:4]
        probes.append(Probe("How many objects are there in the picture?", counts, str(n), "counting", "count"))
        probes.append(Probe("Is the background warm or cool?", ["warm", "cool"], scene.palette, "color", "palette"))
        return probes

    def question(self, desc: Description, avoid: list[str], seed: int) -> MCQ:
        scene = Scene.from_dict(desc.scene)
        rng = random.Random(f"{seed}/{desc.id}")
        qtype = QTYPES[desc.aspect.qtype]
        made = make_question(qtype, scene, rng, set(avoid), focus=desc.aspect.focus, rank=scene.meta.get("rank"))
        if made is None:
            raise BackendError(f"cannot ask a {qtype.name} question about {desc.id}")
        params, answer, distractors = made
        letter = "A" if rng.random() < self.a_preference else rng.choice(LETTERS[1:])
        others = iter(distractors)
        options = {x: (answer if x == letter else next(others)) for x in LETTERS}
        return MCQ(desc.id, desc.capability, desc.level, desc.aspect.name, qtype.template.format(**params),
                   options, letter, meta={"qtype": qtype.name, "params": params})


# ----------------------------------------------------------------------------- LLM examiner
ASPECT_PROMPT = """You are designing a benchmark of vision-language models for the capability "{capability}".
List {n_general} general aspects of this capability and, for each, {n_fine} fine-grained aspects.
Reply with JSON only: [{{"general": "...", "name": "...", "introduction": "..."}}, ...]"""

GUIDANCE_PROMPT = """You are designing a benchmark of vision-language models for the capability "{capability}".
Write a short guidance on how images should be described to test the fine-grained aspect "{aspect}" ({introduction}):
what must be in the picture, what must be unambiguous, what to avoid. Reply with the guidance text only."""

DESCRIBE_PROMPT = """Write {n} different image descriptions for testing "{aspect}" ({introduction}) of the capability
"{capability}" at the {level} level: {level_hint}
Follow this guidance: {guidance}
Avoid these overused words: {used}.
Reply with JSON only: [{{"prompt": "...", "topic": "one word", "keywords": ["4 to 6 words"]}}, ...]"""

LEVEL_HINTS = {"easy": "one object on a plain background.",
               "medium": "several familiar objects interacting in a clear scene.",
               "hard": "many elements, varied viewpoints, textures and lighting."}

PROBE_PROMPT = """Write up to 6 yes/no or multiple-choice questions that check whether an image matches this description:
"{prompt}"
Reply with JSON only: [{{"question": "...", "options": ["..."], "answer": "...", "kind": "object|attribute|counting|color|spatial|other", "element": "..."}}]"""

QUESTION_PROMPT = """Write one multiple-choice question with four options (A-D) and exactly one correct answer that tests
"{aspect}" at the {level} level about an image made from this description: "{prompt}".
Do not ask about: {avoid}.
Reply with JSON only: {{"question": "...", "options": {{"A": "...", "B": "...", "C": "...", "D": "..."}}, "reference_answer": "A|B|C|D"}}"""


def parse_json_reply(reply: str):
    """The first JSON value in a model reply (code fences allowed); ``BackendError`` when there is none."""
    text = re.sub(r"^```(?:json)?|```$", "", reply.strip(), flags=re.M).strip()
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise BackendError(f"reply is not JSON: {reply[:200]!r}", transient=True)
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except json.JSONDecodeError as e:
        raise BackendError(f"reply is not valid JSON ({e}): {reply[:200]!r}", transient=True) from e


class LLMExaminer:
    """An examiner backed by any chat model (``VisionModel`` with ``image=None``), with the paper's prompts
    (aspects, guided descriptions, probes, MCQs) asking for JSON. Works for any capability, including new
    ones a user describes in words. Invalid replies raise ``BackendError`` (transient: the pipeline retries).
    """

    def __init__(self, chat, n_general: int = 4, n_fine: int = 6):
        self.chat, self.n_general, self.n_fine = chat, check_int("n_general", n_general), check_int("n_fine", n_fine)
        self.eyes = chat  # the examiner's LVLM validates the images it asked for (Sec. 3.3)
        self.name = f"llm-examiner:{chat.name}"

    @property
    def cache_key(self) -> str:
        return f"llm-examiner:{getattr(self.chat, 'cache_key', None) or self.chat.name}?{self.n_general}x{self.n_fine}"

    def guidance(self, aspect: Aspect) -> str:
        reply = self.chat.answer(None, GUIDANCE_PROMPT.format(capability=aspect.capability, aspect=aspect.name,
                                                               introduction=aspect.introduction)).strip()
        if not reply:
            raise BackendError(f"empty guidance reply for aspect {aspect.name!r}", transient=True)
        return reply

    def aspects(self, capability: str) -> list[Aspect]:
        reply = parse_json_reply(self.chat.answer(None, ASPECT_PROMPT.format(
            capability=capability, n_general=self.n_general, n_fine=self.n_fine)))
        try:
            return [Aspect(capability, a["general"], a["name"], a.get("introduction", "")) for a in reply]
        except (TypeError, KeyError) as e:
            raise BackendError(f"aspect reply lacks general/name: {reply!r:.200}", transient=True) from e

    def describe(self, aspect, level, n, used_words, seed):
        reply = parse_json_reply(self.chat.answer(None, DESCRIBE_PROMPT.format(
            n=n, aspect=aspect.name, introduction=aspect.introduction, capability=aspect.capability, level=level,
            level_hint=LEVEL_HINTS[level], guidance=aspect.guidance or "none", used=", ".join(sorted(used_words)) or "none")))
        try:
            return [Description(f"{aspect.capability}/{aspect.name}/{level}/{i}-{seed}", aspect.capability, aspect,
                                level, d["prompt"], d["topic"], list(d["keywords"])) for i, d in enumerate(reply[:n])]
        except (TypeError, KeyError) as e:
            raise BackendError(f"description reply lacks prompt/topic/keywords: {reply!r:.200}", transient=True) from e

    def probes(self, desc):
        reply = parse_json_reply(self.chat.answer(None, PROBE_PROMPT.format(prompt=desc.prompt)))
        return [Probe(p["question"], list(p["options"]), p["answer"], p.get("kind", "other"), p.get("element", ""))
                for p in reply if isinstance(p, dict) and {"question", "options", "answer"} <= p.keys()]

    def question(self, desc, avoid, seed):
        r = parse_json_reply(self.chat.answer(None, QUESTION_PROMPT.format(
            aspect=desc.aspect.name, level=desc.level, prompt=desc.prompt, avoid=", ".join(avoid) or "nothing")))
        if not isinstance(r, dict) or set(r.get("options", {})) != set(LETTERS) or r.get("reference_answer") not in LETTERS:
            raise BackendError(f"question reply needs options A-D and a reference_answer: {r!r:.200}", transient=True)
        return MCQ(desc.id, desc.capability, desc.level, desc.aspect.name, r["question"], dict(r["options"]),
                   r["reference_answer"])


def examiner_by_name(name: str, **backends) -> ProceduralExaminer | LLMExaminer:
    """``"procedural"`` or ``"openai:<model>"`` (an OpenAI-compatible server, see :mod:`autobench_v.backends`)."""
    if name == "procedural":
        return ProceduralExaminer()
    if name.startswith("openai:"):
        from autobench_v.backends import OpenAIChat

        return LLMExaminer(OpenAIChat(model=name.split(":", 1)[1], **backends))
    raise ValueError(f"unknown examiner {name!r}; expected 'procedural' or 'openai:<model>'")

