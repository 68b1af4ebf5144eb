"""A client for any OpenAI-compatible `/v1/chat/completions` server (vLLM, SGLang, TGI, hosted APIs), stdlib only.

Requests of a batch go out in parallel on a thread pool; 429, 5xx, timeouts and dropped connections are retried
with exponential backoff (honouring Retry-After), anything else fails at once with the server's answer.
"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from transforms.llm.cache import Generation, Message

MAX_RETRY_AFTER_S = 60.0  # cap on a server's Retry-After, so one bad header cannot stall a worker for hours


class ServerError(RuntimeError):
    """The server refused a request for good (4xx) or kept failing past the retry budget."""


class OpenAIClient:
    """Sends chat conversations to `base_url`/chat/completions and returns one Generation each, in order."""

    def __init__(self, *, base_url: str, model: str, sampling: dict, api_key_env: str | None = None,
                 concurrency: int = 8, timeout_s: float = 600.0, max_retries: int = 5,
                 retry_backoff_s: float = 1.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.sampling, self.concurrency = model, sampling, concurrency
        self.timeout_s, self.max_retries, self.retry_backoff_s = timeout_s, max_retries, retry_backoff_s
        self.headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ServerError(f"api_key_env names {api_key_env!r} but that variable is unset or empty; "
                                  f"export it on every worker or set api_key_env to null")
            self.headers["Authorization"] = f"Bearer {key}"
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai")

    def generate(self, conversations: list[list[Message]]) -> list[Generation]:
        """One Generation per conversation, sent `concurrency` at a time."""
        return list(self._pool.map(self.chat, conversations))

    def chat(self, messages: list[Message]) -> Generation:
        """One conversation, retried on transient failures."""
        body = {"model": self.model, "messages": messages, **self.sampling}
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            try:
                return self._parse(self._post(data))
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:500].decode("utf-8", "replace")
                if exc.code != 429 and exc.code < 500:
                    raise ServerError(f"POST {self.url} -> HTTP {exc.code}: {detail}; check model name "
                                      f"{self.model!r}, base_url and max_prompt_tokens") from None
                wait = self._backoff(attempt, exc.headers.get("Retry-After"))
                last = f"HTTP {exc.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, socket.timeout) as exc:
                wait, last = self._backoff(attempt, None), f"{type(exc).__name__}: {exc}"
            if attempt < self.max_retries:
                time.sleep(wait)
        raise ServerError(f"POST {self.url} failed {self.max_retries + 1} times, last: {last}; "
                          f"raise max_retries/timeout_s or lower concurrency")

    def _post(self, data: bytes) -> dict:
        request = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.load(response)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), MAX_RETRY_AFTER_S)
            except ValueError:  # an HTTP date instead of seconds: fall back to our own schedule
                pass
        return self.retry_backoff_s * 2 ** attempt

    def _parse(self, payload: dict) -> Generation:
        try:
            choice = payload["choices"][0]
            usage = payload.get("usage") or {}
            return Generation(text=choice["message"]["content"] or "", model=payload.get("model", self.model),
                              finish_reason=choice.get("finish_reason") or "stop",
                              prompt_tokens=usage.get("prompt_tokens"),
                              completion_tokens=usage.get("completion_tokens"))
        except (KeyError, IndexError, TypeError) as exc:
            raise ServerError(f"POST {self.url}: not a chat completion ({exc!r}): {str(payload)[:300]}") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False)
