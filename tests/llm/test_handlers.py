"""The backends on real things: a tiny local Llama, and an OpenAI-compatible test double on loopback."""
from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.doubles import send_json

from core.config import ConfigError, from_mapping
from transforms.llm.handlers import (
    GenerationConfig, ModelNotLocal, PromptCounter, VLLMHandler, build_handler, check_model_paths,
)
from transforms.llm.openai_client import ServerError

CONVERSATIONS = [
    [{"role": "system", "content": "Rewrite the code."}, {"role": "user", "content": "def f(x): return x"}],
    [{"role": "user", "content": "print('hello world')"}],
    [{"role": "user", "content": "import os\nos.getcwd()"}],
]


def test_config_loads_from_yaml_mapping_and_rejects_typos():
    cfg = from_mapping(GenerationConfig, {"model_path": "/m", "temperature": 0, "max_prompt_tokens": 100}, where="llm")
    assert cfg.temperature == 0.0 and cfg.top_p == 0.7 and cfg.max_tokens == 8192 and cfg.model_name == "/m"
    with pytest.raises(ConfigError, match="valid keys are"):
        from_mapping(GenerationConfig, {"model_path": "/m", "temprature": 0.1}, where="llm")
    with pytest.raises(ConfigError, match="needs base_url"):
        from_mapping(GenerationConfig, {"model_path": "m", "backend": "openai"}, where="llm")


def test_transformers_batch_is_deterministic_and_padding_free(tiny_model):
    greedy = build_handler(GenerationConfig(model_path=str(tiny_model), temperature=0.0, max_tokens=6))
    greedy.load()
    batch = greedy.generate(CONVERSATIONS)
    assert len(batch) == 3 and batch == greedy.generate(CONVERSATIONS) and len({g.text for g in batch}) == 3
    assert all(g.completion_tokens <= 6 and g.finish_reason in ("stop", "length") for g in batch)
    # left padding: a prompt generates the same tokens alone as in a batch with longer ones
    assert greedy.generate(CONVERSATIONS[1:2])[0].text == batch[1].text
    assert batch[1].prompt_tokens == PromptCounter(str(tiny_model))(CONVERSATIONS[1])
    sampled = build_handler(GenerationConfig(model_path=str(tiny_model), temperature=1.0, top_p=1.0, max_tokens=6,
                                             seed=3))
    sampled.load()
    assert sampled.generate(CONVERSATIONS) == sampled.generate(CONVERSATIONS)


def test_only_local_model_folders_pass_and_served_names_are_not_checked(tiny_model, tmp_path):
    check_model_paths(GenerationConfig(model_path=str(tiny_model)))
    check_model_paths(GenerationConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model_path="llama-70b"))
    with pytest.raises(ModelNotLocal, match=r"--model gpt2: not a local model folder; nothing is downloaded .* "
                                            r"`hf download gpt2 --local-dir models/gpt2`"):
        check_model_paths(GenerationConfig(model_path="gpt2"))
    with pytest.raises(ModelNotLocal, match="has no config.json"):
        check_model_paths(GenerationConfig(backend="vllm", model_path=str(tmp_path)))
    with pytest.raises(ModelNotLocal, match="generation.tokenizer_path Qwen/Qwen2.5-7B: not a local model folder"):
        check_model_paths(GenerationConfig(backend="openai", base_url="http://h/v1", model_path="m",
                                           tokenizer_path="Qwen/Qwen2.5-7B", max_prompt_tokens=10))
    with pytest.raises(ModelNotLocal, match="not a local model folder"):
        PromptCounter("Qwen/Qwen2.5-7B")


def test_vllm_missing_names_the_extra():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ImportError, match=r"pip install 'refinery\[gpu\]'"):
        VLLMHandler(GenerationConfig(backend="vllm", model_path="/models/llama"))


class ChatCompletionsTestDouble(BaseHTTPRequestHandler):
    """A test double of /v1/chat/completions: echoes the last user message, after scripted failures."""

    failures: list[int] = []  # status codes to answer, in order, before succeeding
    lock = threading.Lock()
    in_flight = max_in_flight = 0
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            status = cls.failures.pop(0) if cls.failures else 200
            cls.bodies.append(body)
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        time.sleep(0.05)  # long enough for concurrent requests to overlap
        with cls.lock:
            cls.in_flight -= 1
        if self.path != "/v1/chat/completions":
            status = 404
        payload = ({"error": {"message": f"status {status}"}} if status != 200 else {
            "model": body["model"],
            "choices": [{"message": {"role": "assistant", "content": "echo: " + body["messages"][-1]["content"]},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5}})
        send_json(self, status, payload, headers={"Retry-After": "0"} if status == 429 else None)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def chat_server():
    """The test double on a free loopback port; yields its base URL."""
    double = type("Double", (ChatCompletionsTestDouble,), {"failures": [], "bodies": [], "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), double)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", double
    server.shutdown()
    server.server_close()


def openai_cfg(base_url: str, **kw) -> GenerationConfig:
    return GenerationConfig(backend="openai", model_path="served-model", base_url=base_url, retry_backoff_s=0.01,
                            **kw)


def test_openai_retries_429_and_500_then_answers_in_order_concurrently(chat_server):
    base_url, double = chat_server
    double.failures = [429, 500, 503]
    handler = build_handler(openai_cfg(base_url, concurrency=4, max_retries=3))
    handler.load()
    out = handler.generate(CONVERSATIONS * 4)
    assert [g.text for g in out] == ["echo: " + c[-1]["content"] for c in CONVERSATIONS * 4]
    assert out[0].prompt_tokens == 11 and out[0].completion_tokens == 5 and out[0].model == "served-model"
    assert len(double.bodies) == 12 + 3 and double.max_in_flight > 1
    assert double.bodies[0]["temperature"] == 0.2 and double.bodies[0]["top_p"] == 0.7


def test_openai_gives_up_with_a_clear_error(chat_server):
    base_url, double = chat_server
    double.failures = [500] * 3
    handler = build_handler(openai_cfg(base_url, concurrency=1, max_retries=2))
    handler.load()
    with pytest.raises(ServerError, match="failed 3 times, last: HTTP 500"):
        handler.generate(CONVERSATIONS[:1])
    double.failures = [400]
    with pytest.raises(ServerError, match="HTTP 400.*check model name"):
        handler.generate(CONVERSATIONS[:1])
