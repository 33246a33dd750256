"""The OpenAI-compatible HTTP backend against a real local server on loopback."""

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from autobench_v.backends import OpenAIChat, OpenAIImages, ProceduralGenerator, with_retries
from autobench_v.core import BackendError
from autobench_v.examiner import LLMExaminer, parse_json_reply
from PIL import Image


class FakeOpenAI(BaseHTTPRequestHandler):
    """Speaks /v1/chat/completions and /v1/images/generations; ``script`` scripts the next replies."""

    requests: list = []
    script: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        action = type(self).script.pop(0) if type(self).script else "ok"
        if action == "sleep":
            time.sleep(1.0)
        if isinstance(action, int):
            self.send_response(action)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "nope"}}')
            return
        if action == "garbage":
            payload = b"<html>not json"
        elif self.path.endswith("/images/generations"):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, format="PNG")
            payload = json.dumps({"data": [{"b64_json": base64.b64encode(buf.getvalue()).decode()}]}).encode()
        else:
            text = action if isinstance(action, str) and action not in ("ok", "sleep") else "The answer is [[B]]."
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server(monkeypatch):
    FakeOpenAI.requests, FakeOpenAI.script = [], []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("TEST_KEY", "sk-test")
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_chat_request_format_and_reply(server):
    chat = OpenAIChat("vlm-1", base_url=server, api_key_env="TEST_KEY", base_delay=0.01)
    reply = chat.answer(Image.new("RGB", (4, 4)), "Which? [[X]]")
    assert reply == "The answer is [[B]]."
    req = FakeOpenAI.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    content = req["body"]["messages"][0]["content"]
    assert req["body"]["model"] == "vlm-1" and req["body"]["temperature"] == 0.0
    assert content[0]["type"] == "image_url" and content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[1] == {"type": "text", "text": "Which? [[X]]"}
    chat.answer(None, "text only")
    assert [c["type"] for c in FakeOpenAI.requests[1]["body"]["messages"][0]["content"]] == ["text"]


def test_no_key_sends_no_auth(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    OpenAIChat("m", base_url=server).answer(None, "hi")
    assert FakeOpenAI.requests[0]["auth"] is None


def test_rate_limit_and_server_errors_are_retried(server):
    FakeOpenAI.script = [429, 503, "ok"]
    chat = OpenAIChat("m", base_url=server, retries=3, base_delay=0.01)
    assert chat.answer(None, "q") == "The answer is [[B]]."
    assert len(FakeOpenAI.requests) == 3


def test_client_errors_fail_fast_with_reason(server):
    FakeOpenAI.script = [400]
    with pytest.raises(BackendError, match="HTTP 400") as e:
        OpenAIChat("m", base_url=server, retries=3, base_delay=0.01).answer(None, "q")
    assert not e.value.transient and len(FakeOpenAI.requests) == 1


def test_invalid_json_and_timeouts_are_transient(server):
    FakeOpenAI.script = ["garbage", "garbage"]
    with pytest.raises(BackendError, match="invalid JSON") as e:
        OpenAIChat("m", base_url=server, retries=1, base_delay=0.01).answer(None, "q")
    assert e.value.transient
    FakeOpenAI.script = ["sleep"]
    with pytest.raises(BackendError, match="failed|timed out"):
        OpenAIChat("m", base_url=server, retries=0, timeout=0.2).answer(None, "q")


def test_images_endpoint(server):
    img = OpenAIImages("t2i", base_url=server, base_delay=0.01).generate("a red square")
    assert img.size == (8, 8) and img.getpixel((0, 0)) == (255, 0, 0)
    body = FakeOpenAI.requests[0]["body"]
    assert FakeOpenAI.requests[0]["path"] == "/v1/images/generations" and body["response_format"] == "b64_json"


def test_llm_examiner_over_http(server):
    FakeOpenAI.script = ['```json\n[{"general": "color", "name": "hue naming", "introduction": "names"}]\n```',
                         "no json at all", '{"question": "Q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, '
                         '"reference_answer": "C"}']
    ex = LLMExaminer(OpenAIChat("exam", base_url=server, base_delay=0.01))
    aspects = ex.aspects("colour naming")
    assert aspects[0].name == "hue naming"
    with pytest.raises(BackendError, match="not JSON"):
        ex.aspects("colour naming")
    from autobench_v.core import Description

    q = ex.question(Description("d1", "colour naming", aspects[0], "easy", "a red ball", "ball", ["red"]), [], 0)
    assert q.answer == "C" and q.options["D"] == "d"


def test_parse_json_reply_and_retry_helper():
    assert parse_json_reply('Sure! {"a": 1} trailing') == {"a": 1}
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise BackendError("busy", transient=True)
        return "done"

    assert with_retries(flaky, retries=3, sleep=lambda s: None) == "done" and len(calls) == 3


def test_procedural_generator_faults_and_bad_prompt():
    import random

    from autobench_v.world import describe_scene, random_scene

    prompt = describe_scene(random_scene("medium", random.Random(0)))
    assert ProceduralGenerator().generate(prompt).info["fault"] == ""
    assert ProceduralGenerator(fault_rate=1.0).generate(prompt).info["fault"]
    with pytest.raises(BackendError, match="cannot render"):
        ProceduralGenerator().generate("a cat on a sofa")


def test_chat_cache_key_names_server_and_sampling(server):
    a = OpenAIChat("m", base_url=server, temperature=0.0)
    assert server in a.cache_key and "temperature=0.0" in a.cache_key
    assert a.cache_key != OpenAIChat("m", base_url="http://other:1/v1").cache_key
    assert a.cache_key != OpenAIChat("m", base_url=server, temperature=0.7).cache_key
    ex = LLMExaminer(a)
    assert ex.eyes is a and server in ex.cache_key
    with pytest.raises(ValueError, match="temperature"):
        OpenAIChat("m", temperature=float("nan"))


def test_llm_examiner_guidance_reaches_the_description_prompt(server):
    from autobench_v.core import Aspect

    FakeOpenAI.script = ["Show one clock face, hands clearly visible.",
                         '[{"prompt": "a clock", "topic": "clock", "keywords": ["clock", "hands"]}]']
    ex = LLMExaminer(OpenAIChat("exam", base_url=server, base_delay=0.01))
    aspect = Aspect("reading clocks", "time", "hour hand")
    aspect.guidance = ex.guidance(aspect)
    ex.describe(aspect, "easy", 1, set(), 0)
    assert "hour hand" in FakeOpenAI.requests[0]["body"]["messages"][0]["content"][0]["text"]
    assert "hands clearly visible" in FakeOpenAI.requests[1]["body"]["messages"][0]["content"][0]["text"]
