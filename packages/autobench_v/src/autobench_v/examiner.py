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

import networkx as nx

from autobench_v.core import LETTERS, MCQ, Aspect, BackendError, Description, Probe
from autobench_v.questions import QTYPES, make_question
from autobench_v.world import COLORS, LEVEL_STYLE, PLACES, Scene, describe_scene, random_scene

# capability -> general aspect -> fine-grained aspects (name, question type)
ONTOLOGY: dict[str, dict[str, list[tuple[str, str]]]] = {
    "basic_understanding": {
        "color recognition": [("color of a single object", "color_of")],
        "shape recognition": [("shape of a coloured object", "shape_of")],
        "object counting": [("counting one kind of shape", "count_shape"), ("counting all objects", "count_all")],
    },
    "spatial_understanding": {
        "absolute position": [("leftmost object", "leftmost"), ("topmost object", "topmost")],
        "relative position": [("relation between two objects", "relation")],
    },
    "semantic_understanding": {
        "scene category": [("place from its objects", "place")],
        "object presence": [("which object is present", "presence")],
    },
    "reasoning_capacity": {
        "comparison": [("difference of two counts", "more_than")],
        "counterfactual counting": [("count after removing a colour", "remove_color")],
    },
    "atmospheric_understanding": {
        "emotional tone": [("mood of the scene", "mood")],
        "lighting": [("warmth and brightness", "lighting")],
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
    """

    name = "procedural-examiner"

    def __init__(self, a_preference: float = 0.55):
        if not 0 <= a_preference <= 1:
            raise ValueError(f"a_preference must be in [0, 1], got {a_preference}")
        self.a_preference = a_preference

    def aspects(self, capability: str) -> list[Aspect]:
        _check_capability(capability, ONTOLOGY)
        return [Aspect(capability, general, name, f"Questions about the {name}.", qtype)
                for general, fine in ONTOLOGY[capability].items() for name, qtype in fine]

    def describe(self, aspect: Aspect, level: str, n: int, used_words: set[str], seed: int) -> list[Description]:
        if level not in LEVEL_STYLE:
            raise ValueError(f"level must be one of {tuple(LEVEL_STYLE)}, got {level!r}")
        rng = random.Random(f"{seed}/{aspect.name}/{level}")
        out, tries = [], 0
        while len(out) < n and tries < 50 * n:
            tries += 1
            must = [rng.choice(PLACES[rng.choice(sorted(PLACES))]) for _ in range(2)] if aspect.qtype == "place" else []
            scene = random_scene(level, rng, must_have=must, avoid_colors=used_words & set(COLORS))
            if make_question(QTYPES[aspect.qtype], scene, random.Random(0), set()) is None:
                continue  # the scene cannot support this aspect's question
            topic = scene.objects[0].name
            keywords = sorted({o.color for o in scene.objects} | {o.shape for o in scene.objects} | {scene.mood})[:6]
            out.append(Description(f"{aspect.capability}/{aspect.qtype}/{level}/{len(out)}-{seed}", aspect.capability,
                                   aspect, level, describe_scene(scene), topic, keywords, scene.to_dict()))
        return out

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
        made = make_question(qtype, scene, rng, set(avoid))
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

DESCRIBE_PROMPT = """Write {n} different image descriptions for testing "{aspect}" ({introduction}) of the capability
"{capability}" at the {level} level: {level_hint}
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
        self.chat, self.n_general, self.n_fine = chat, n_general, n_fine
        self.name = f"llm-examiner:{chat.name}"

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
            level_hint=LEVEL_HINTS[level], used=", ".join(sorted(used_words)) or "none")))
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

