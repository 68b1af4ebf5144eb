"""The generation cache: stable keys, round trips, idempotent writes, and damage reported rather than hidden."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from transforms.llm.cache import CorruptEntry, Generation, GenerationCache, LocalStore, cache_key

MESSAGES = [{"role": "system", "content": "Rewrite the code."}, {"role": "user", "content": "print(1)"}]
SAMPLING = {"temperature": 0.2, "top_p": 0.7, "max_tokens": 8192, "seed": 0}


def gen(text: str) -> Generation:
    return Generation(text=text, model="m", finish_reason="stop", prompt_tokens=7, completion_tokens=3)


def test_key_depends_on_model_sampling_and_prompt_only():
    key = cache_key(model="m", sampling=SAMPLING, messages=MESSAGES)
    reordered = [{"content": m["content"], "role": m["role"], "name": "x"} for m in MESSAGES]
    assert cache_key(model="m", sampling=dict(reversed(SAMPLING.items())), messages=reordered) == key
    assert cache_key(model="m2", sampling=SAMPLING, messages=MESSAGES) != key
    assert cache_key(model="m", sampling={**SAMPLING, "temperature": 0.0}, messages=MESSAGES) != key
    assert cache_key(model="m", sampling=SAMPLING, messages=MESSAGES[1:]) != key
    assert len(key) == 64


def test_round_trip_and_miss(tmp_path):
    cache = GenerationCache(str(tmp_path), LocalStore())
    key = cache_key(model="m", sampling=SAMPLING, messages=MESSAGES)
    assert cache.get(key) is None
    cache.put(key, gen("ünïcode ok"))
    assert cache.get(key) == gen("ünïcode ok")
    assert cache.path(key) == f"{tmp_path}/{key[:2]}/{key}.json"


def test_concurrent_writers_of_one_key_leave_one_whole_entry(tmp_path):
    cache = GenerationCache(str(tmp_path), LocalStore())
    key = "ab" * 32
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: cache.put(key, gen(f"attempt {i} " * 1000)), range(32)))
    assert cache.get(key).text.startswith("attempt ")
    assert [p.name for p in (tmp_path / "ab").iterdir()] == [f"{key}.json"]  # no temporaries left behind


def test_truncated_entry_is_reported(tmp_path):
    cache = GenerationCache(str(tmp_path), LocalStore())
    key = "cd" * 32
    cache.put(key, gen("x"))
    path = cache.path(key)
    with open(path, "rb+") as fh:
        fh.truncate(10)
    with pytest.raises(CorruptEntry, match="unreadable"):
        cache.get(key)


def test_entry_under_the_wrong_name_is_reported(tmp_path):
    cache = GenerationCache(str(tmp_path), LocalStore())
    cache.put("ef" * 32, gen("x"))
    other = "ef" + "0" * 62
    LocalStore().write_atomic(cache.path(other), LocalStore().read(cache.path("ef" * 32)))
    with pytest.raises(CorruptEntry, match="holds key"):
        cache.get(other)
