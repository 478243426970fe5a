"""The semantic cache's Redis store against a real redis-server started on loopback by the test.

Skipped (with the reason) where the machine has no ``redis-server`` binary or no ``redis``
package; `.ci/run` installs both.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

redis = pytest.importorskip("redis", reason="the redis package is not installed (pip install 'cascade-router[redis]')")

from cascade_router.stages.cache import CacheError, SemanticCache, cache_key  # noqa: E402
from cascade_router.stages.redis_store import RedisCacheStore  # noqa: E402


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("no redis-server binary on this machine (apt-get install redis-server)")
    port = _free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield url
    client.close()
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def store(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    s = RedisCacheStore(redis_url, ttl_s=None, max_entries=100)
    yield s
    s.close()


def _unit(*xs) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_exact_nearest_and_replace(store):
    store.add("k", "q one", _unit(1, 0, 0), {"question": "Q one", "answer": "A1", "route": "slm"}, 100.0)
    store.add("k", "q two", _unit(0, 1, 0), {"question": "Q two", "answer": "A2", "route": "llm"}, 101.0)
    store.add("other", "q one", _unit(1, 0, 0), {"question": "Q one", "answer": "X", "route": "slm"}, 102.0)
    entry, created = store.exact("k", "q one", 200.0)
    assert entry["answer"] == "A1" and created == 100.0
    assert store.exact("k", "q three", 200.0) is None
    entry, created, sim = store.nearest("k", _unit(0.1, 1, 0), 200.0)
    assert entry["answer"] == "A2" and sim == pytest.approx(float(_unit(0.1, 1, 0) @ _unit(0, 1, 0)), abs=1e-6)
    assert store.nearest("nothing-here", _unit(1, 0, 0), 200.0) is None
    # a newer answer to the same question under the same key replaces the old one
    store.add("k", "q one", _unit(1, 0, 0), {"question": "Q one", "answer": "A1b", "route": "llm"}, 300.0)
    assert store.exact("k", "q one", 301.0)[0]["answer"] == "A1b"
    assert store.size() == 3


def test_least_recently_used_go_beyond_max_entries(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    s = RedisCacheStore(redis_url, max_entries=2)
    try:
        s.add("k", "a", _unit(1, 0), {"question": "a", "answer": "1", "route": "slm"}, 1.0)
        s.add("k", "b", _unit(0, 1), {"question": "b", "answer": "2", "route": "slm"}, 2.0)
        assert s.exact("k", "a", 3.0) is not None  # a is used again: b is now the oldest
        s.add("k", "c", _unit(1, 1), {"question": "c", "answer": "3", "route": "slm"}, 4.0)
        assert s.size() == 2
        assert s.exact("k", "b", 5.0) is None and s.exact("k", "a", 5.0) is not None and s.exact("k", "c", 5.0) is not None
    finally:
        s.close()


def test_entries_expire_with_the_ttl(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    s = RedisCacheStore(redis_url, ttl_s=0.3)
    try:
        s.add("k", "a", _unit(1, 0), {"question": "a", "answer": "1", "route": "slm"}, time.time())
        assert s.exact("k", "a", time.time()) is not None
        time.sleep(0.5)
        assert s.exact("k", "a", time.time()) is None
        assert s.nearest("k", _unit(1, 0), time.time()) is None
    finally:
        s.close()


def test_two_replicas_share_one_cache(redis_url):
    """What one server replica stores, another answers from (through SemanticCache)."""
    redis.Redis.from_url(redis_url).flushdb()

    class Fixed:  # a deterministic embedder: the vector depends on the first word only
        model_id, dim = "fixed", 3

        def embed(self, texts):
            return np.stack([_unit(1, 0, 0) if t.startswith("what") else _unit(0, 0, 1) for t in texts])

        def close(self):
            pass

    a = SemanticCache(RedisCacheStore(redis_url), Fixed(), threshold=0.95)
    b = SemanticCache(RedisCacheStore(redis_url), Fixed(), threshold=0.95)
    key = cache_key("squad", "Paris is the capital of France.", "fp", 24, None)
    a.put("What is the capital of France?", key, "Paris", "slm", {"tiers": ["slm"]})
    hit = b.lookup("what is the capital of france", key)
    assert hit is not None and hit.kind == "exact" and hit.answer == "Paris" and hit.route == "slm"
    hit = b.lookup("what city is the capital?", key)
    assert hit is not None and hit.kind == "semantic" and hit.similarity == pytest.approx(1.0)
    assert b.lookup("Who wrote Hamlet?", key) is None
    other = cache_key("squad", "Another passage.", "fp", 24, None)
    assert b.lookup("What is the capital of France?", other) is None
    a.close()
    b.close()


def test_unreachable_server_is_a_cache_error():
    with pytest.raises(CacheError, match=r"cannot use the Redis cache at redis://127\.0\.0\.1:"):
        RedisCacheStore(f"redis://127.0.0.1:{_free_port()}/0")
