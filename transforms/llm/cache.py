"""Finished generations kept under an output prefix, so a rerun or a retried bundle never pays for one twice.

Layout: one small JSON object per generation at `<prefix>/<k[:2]>/<k>.json`, where `k` is the sha256 of (model
id, sampling params, prompt messages). A lookup is one point read, so no index is loaded and memory stays O(1);
any worker can check any key, including a bundle that Beam retries after some of its batches were written.
Writes go to a unique temporary name and are renamed into place, so a reader never sees half an entry, and two
workers writing the same key (a duplicated prompt, a retried bundle) leave one complete entry, not two.
Limits: one object per generation (16M generations = 16M small files; fine on GCS/S3 and ext4, slow to `ls`),
and a lookup costs one read round trip (~20-50 ms on object stores, ~0.1 ms on local disk).
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from typing import Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
FORMAT_VERSION = 1  # bump when the key recipe or the entry layout changes; old entries then simply miss


@dataclass(frozen=True, kw_only=True, slots=True)
class Generation:
    """One model response and what produced it: the stage emits it and the cache stores it."""

    text: str
    model: str
    finish_reason: str  # "stop" (end of turn) or "length" (hit max_tokens), as the OpenAI API reports it
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class CorruptEntry(ValueError):
    """A cache file that does not decode to the entry its name promises; the caller regenerates it."""


class Store(Protocol):
    """The three file operations the cache needs; the Beam stage passes one over FileSystems."""

    def exists(self, path: str) -> bool: ...

    def read(self, path: str) -> bytes: ...

    def write_atomic(self, path: str, data: bytes) -> None: ...


class LocalStore:
    """A Store on the local disk (tests and single-machine scripts)."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    def write_atomic(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)


def cache_key(*, model: str, sampling: dict, messages: list[Message]) -> str:
    """sha256 of everything that decides the output; key order and extra message fields do not matter."""
    canonical = {
        "v": FORMAT_VERSION,
        "model": model,
        "sampling": sampling,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
    }
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class GenerationCache:
    """Point reads and idempotent writes of finished generations under `prefix`."""

    def __init__(self, prefix: str, store: Store) -> None:
        self.prefix, self.store = prefix.rstrip("/"), store

    def path(self, key: str) -> str:
        return f"{self.prefix}/{key[:2]}/{key}.json"

    def get(self, key: str) -> Generation | None:
        """The stored generation, None when absent; CorruptEntry when the file is there but unusable."""
        path = self.path(key)
        if not self.store.exists(path):
            return None
        try:
            entry = json.loads(self.store.read(path))
            if entry.get("key") != key or entry.get("v") != FORMAT_VERSION:
                raise CorruptEntry(f"{path}: holds key {entry.get('key')!r} v{entry.get('v')}, expected {key} "
                                   f"v{FORMAT_VERSION}; delete it to regenerate")
            return Generation(**entry["generation"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise CorruptEntry(f"{path}: unreadable cache entry ({exc}); it will be regenerated") from exc

    def put(self, key: str, generation: Generation) -> None:
        """Store one finished generation; writing the same key again replaces it whole."""
        entry = {"v": FORMAT_VERSION, "key": key, "generation": asdict(generation)}
        self.store.write_atomic(self.path(key), json.dumps(entry, ensure_ascii=False).encode("utf-8"))
