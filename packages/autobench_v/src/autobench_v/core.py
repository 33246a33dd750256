"""The pipeline's data types and the three small protocols every backend implements.

* :class:`Examiner` turns a capability into aspects, descriptions, probe questions and MCQs;
* :class:`ImageGenerator` turns a description into an image;
* :class:`VisionModel` answers a prompt about an image (examinees, and the examiner's eyes for
  self-validation) with a reply that should contain ``[[X]]``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image

CAPABILITIES = ("basic_understanding", "spatial_understanding", "semantic_understanding", "reasoning_capacity",
                "atmospheric_understanding")
LETTERS = ("A", "B", "C", "D")
ANSWER_RE = re.compile(r"\[\[(.*?)\]\]")


@dataclass
class Aspect:
    """A fine-grained aspect of a capability (the paper's hierarchy: general aspect -> fine-grained)."""

    capability: str
    general: str
    name: str
    introduction: str = ""
    qtype: str = ""  # the procedural examiner's question type; free text for LLM examiners
    focus: dict = field(default_factory=dict)  # the procedural examiner's narrowing (a colour, shape, answer)
    guidance: str = ""  # the examiner's per-aspect guidance (Sec. 3.2), filled in by the pipeline


@dataclass
class Description:
    """A guided image description at one difficulty level (Prompt, Topic word, Key words)."""

    id: str
    capability: str
    aspect: Aspect
    level: str
    prompt: str
    topic: str
    keywords: list[str]
    scene: dict | None = None  # the procedural examiner's ground truth

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Description:
        return cls(**{**d, "aspect": Aspect(**d["aspect"])})


@dataclass
class Probe:
    """A TIFA-style probe question checking one element of a description against the image."""

    question: str
    options: list[str]
    answer: str  # the correct option text
    kind: str = "other"
    element: str = ""  # what it checks ("red circle"), passed on as "do not ask about" when it fails


@dataclass
class MCQ:
    """A four-option single-answer multiple-choice question about one image."""

    id: str
    capability: str
    level: str
    aspect: str
    question: str
    options: dict[str, str]  # letter -> text
    answer: str  # the correct letter
    needs_image: bool = True
    meta: dict = field(default_factory=dict)

    def prompt(self) -> str:
        opts = "\n".join(f"{k}. {v}" for k, v in self.options.items())
        return (f"{self.question}\n{opts}\nAnswer with the letter of the correct option in double square "
                "brackets, for example [[A]].")

    def with_answer_at(self, letter: str) -> MCQ:
        """The same question with the correct option moved to ``letter`` (swapped with what was there)."""
        if letter not in LETTERS:
            raise ValueError(f"letter must be one of {LETTERS}, got {letter!r}")
        opts = dict(self.options)
        opts[letter], opts[self.answer] = opts[self.answer], opts[letter]
        return MCQ(**{**asdict(self), "options": opts, "answer": letter})

    def rotated(self, k: int) -> MCQ:
        """Options rotated by ``k`` positions (MMBench CircularEval)."""
        texts = [self.options[x] for x in LETTERS]
        new = dict(zip(LETTERS, texts[k:] + texts[:k]))
        answer = LETTERS[(LETTERS.index(self.answer) - k) % 4]
        return MCQ(**{**asdict(self), "options": new, "answer": answer})

    def to_dict(self) -> dict:
        return asdict(self)


def extract_choice(reply: str | None) -> str | None:
    """The letter in ``[[X]]`` (the paper's regex), or None when the reply lacks one."""
    if not reply:
        return None
    for m in ANSWER_RE.findall(reply):
        m = m.strip().upper()[:1]
        if m in LETTERS:
            return m
    return None


@runtime_checkable
class Examiner(Protocol):
    name: str

    def aspects(self, capability: str) -> list[Aspect]: ...

    def guidance(self, aspect: Aspect) -> str: ...

    def describe(self, aspect: Aspect, level: str, n: int, used_words: set[str], seed: int) -> list[Description]: ...

    def probes(self, desc: Description) -> list[Probe]: ...

    def question(self, desc: Description, avoid: list[str], seed: int) -> MCQ: ...


@runtime_checkable
class ImageGenerator(Protocol):
    name: str

    def generate(self, prompt: str, attempt: int = 0) -> Image.Image: ...


@runtime_checkable
class VisionModel(Protocol):
    name: str

    def answer(self, image: Image.Image | None, prompt: str) -> str: ...


class BackendError(RuntimeError):
    """A backend call failed; ``transient`` failures (rate limits, timeouts, 5xx) are retried."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient
