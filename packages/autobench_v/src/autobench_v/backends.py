"""Model backends behind the three protocols.

* :class:`OpenAIChat` / :class:`OpenAIImages`: any OpenAI-compatible server (OpenAI, vLLM, Ollama, LM
  Studio, ...) over plain HTTP: chat completions with images as data URLs, and the images endpoint. Keys
  come from the environment. Rate limits (429), server errors (5xx) and timeouts are ``transient``.
* :class:`TransformersVLM` / :class:`DiffusersGenerator`: local models from a folder (extra ``local``).
* :class:`ProceduralGenerator`: the offline renderer, with optional injected faults.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from papercommon.checks import check_finite, check_int, check_range
from PIL import Image

from autobench_v.core import BackendError
from autobench_v.world import corrupt, parse_description, render

T = TypeVar("T")


def with_retries(fn: Callable[[], T], retries: int = 3, base_delay: float = 1.0, max_delay: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn``; retry transient ``BackendError`` s with exponential backoff and jitter."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except BackendError as e:
            if not e.transient or attempt == retries:
                raise
            sleep(min(max_delay, base_delay * 2**attempt) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")


def image_to_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class _OpenAIClient:
    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, retries: int = 3, base_delay: float = 1.0):
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")).rstrip("/")
        self.api_key_env, self.timeout, self.retries, self.base_delay = api_key_env, timeout, retries, base_delay

    def _post(self, path: str, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.base_url + path, data=json.dumps(payload).encode(), headers=headers)

        def call() -> dict:
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")[:300]
                raise BackendError(f"{self.base_url}{path} answered HTTP {e.code}: {body}",
                                   transient=e.code == 429 or e.code >= 500) from e
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                raise BackendError(f"{self.base_url}{path} failed: {e}", transient=True) from e
            except json.JSONDecodeError as e:
                raise BackendError(f"{self.base_url}{path} returned invalid JSON: {e}", transient=True) from e

        return with_retries(call, self.retries, self.base_delay)


class OpenAIChat(_OpenAIClient):
    """A chat-completions model as a ``VisionModel`` (and, through ``LLMExaminer``, an examiner).

    Args:
        model: the model name the server knows.
        base_url: e.g. ``http://localhost:8000/v1`` for vLLM (default ``$OPENAI_BASE_URL`` or OpenAI's).
        api_key_env: the environment variable holding the key (none is sent when it is unset).
        temperature: sampling temperature (0 for reproducible benchmarks).
    """

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, retries: int = 3, temperature: float = 0.0, max_tokens: int = 1024,
                 base_delay: float = 1.0):
        super().__init__(model, base_url, api_key_env, timeout, retries, base_delay)
        self.temperature, self.max_tokens = check_finite("temperature", temperature), check_int("max_tokens", max_tokens)
        if temperature < 0:
            raise ValueError(f"temperature: expected a finite number >= 0, got {temperature}")
        self.name = f"openai:{model}"

    @property
    def cache_key(self) -> str:
        """Name, endpoint URL and sampling settings: answers are cached per server and setting."""
        return f"{self.name}@{self.base_url}?temperature={self.temperature}&max_tokens={self.max_tokens}"

    def answer(self, image: Image.Image | None, prompt: str) -> str:
        content: list[dict] = [{"type": "text", "text": prompt}]
        if image is not None:
            content.insert(0, {"type": "image_url", "image_url": {"url": image_to_data_url(image)}})
        reply = self._post("/chat/completions", {"model": self.model, "temperature": self.temperature,
                                                 "max_tokens": self.max_tokens,
                                                 "messages": [{"role": "user", "content": content}]})
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as e:
            raise BackendError(f"chat reply has no choices[0].message.content: {str(reply)[:200]}",
                               transient=True) from e


class OpenAIImages(_OpenAIClient):
    """The images endpoint (``/images/generations``, base64 replies) as an ``ImageGenerator``."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 size: str = "1024x1024", timeout: float = 120.0, retries: int = 3, base_delay: float = 1.0):
        super().__init__(model, base_url, api_key_env, timeout, retries, base_delay)
        self.size = size
        self.name = f"openai-images:{model}"

    @property
    def cache_key(self) -> str:
        return f"{self.name}@{self.base_url}?size={self.size}"

    def generate(self, prompt: str, attempt: int = 0) -> Image.Image:
        reply = self._post("/images/generations", {"model": self.model, "prompt": prompt, "n": 1,
                                                   "size": self.size, "response_format": "b64_json"})
        try:
            return Image.open(io.BytesIO(base64.b64decode(reply["data"][0]["b64_json"]))).convert("RGB")
        except (KeyError, IndexError, TypeError, ValueError, OSError) as e:
            raise BackendError(f"image reply has no decodable data[0].b64_json: {str(reply)[:200]}",
                               transient=True) from e


class ProceduralGenerator:
    """The offline text-to-image model: parses a procedural description and renders it.

    Args:
        fault_rate: probability that a rendering is deliberately corrupted (a recoloured or missing object,
            a flipped mood); the fault is recorded in ``image.info["fault"]`` for evaluation only.
        seed: seeds the faults (with the prompt and the attempt number, so reruns are identical).
    """

    name = "procedural-renderer"

    def __init__(self, fault_rate: float = 0.0, seed: int = 0):
        check_range("fault_rate", fault_rate, 0.0, 1.0)
        self.fault_rate, self.seed = fault_rate, seed
        self.cache_key = f"{self.name}?fault_rate={fault_rate}&seed={seed}"

    def generate(self, prompt: str, attempt: int = 0) -> Image.Image:
        try:
            scene = parse_description(prompt)
        except ValueError as e:
            raise BackendError(str(e)) from e
        rng = random.Random(f"{self.seed}/{attempt}/{prompt}")
        fault = ""
        if rng.random() < self.fault_rate:
            scene, fault = corrupt(scene, rng)
        img = render(scene)
        img.info["fault"] = fault
        return img


class TransformersVLM:
    """A local transformers vision-language model (``AutoModelForImageTextToText``) from a folder."""

    def __init__(self, path: str | Path, max_new_tokens: int = 32, device: str = "cpu"):
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no transformers model folder at {path} (expected {path}/config.json)")
        try:
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as e:
            raise ImportError("TransformersVLM needs `pip install autobench_v[local]`") from e
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForImageTextToText.from_pretrained(path).to(device).eval()
        self.max_new_tokens, self.device = max_new_tokens, device
        self.name = f"transformers:{path.name}"
        self.cache_key = f"transformers:{path.resolve()}?max_new_tokens={max_new_tokens}&do_sample=False"

    def answer(self, image: Image.Image | None, prompt: str) -> str:
        import torch

        content = ([{"type": "image"}] if image is not None else []) + [{"type": "text", "text": prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        inputs = self.processor(text=text, images=[image] if image is not None else None,
                                return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


class DiffusersGenerator:
    """A local diffusers text-to-image pipeline from a folder."""

    def __init__(self, path: str | Path, steps: int = 25, device: str = "cpu", seed: int = 0):
        path = Path(path)
        if not (path / "model_index.json").exists():
            raise FileNotFoundError(f"no diffusers pipeline folder at {path} (expected {path}/model_index.json)")
        try:
            from diffusers import DiffusionPipeline
        except ImportError as e:
            raise ImportError("DiffusersGenerator needs `pip install autobench_v[local]`") from e
        self.pipe = DiffusionPipeline.from_pretrained(path).to(device)
        self.steps, self.device, self.seed = steps, device, seed
        self.name = f"diffusers:{path.name}"
        self.cache_key = f"diffusers:{path.resolve()}?steps={steps}&seed={seed}"

    def generate(self, prompt: str, attempt: int = 0) -> Image.Image:
        import torch

        g = torch.Generator(self.device).manual_seed(self.seed + attempt)
        return self.pipe(prompt, num_inference_steps=self.steps, generator=g).images[0]
