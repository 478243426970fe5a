"""The semantic cache: normalisation and keys, the SQLite store (exact and nearest lookups, TTL,
LRU bound, replacement, persistence, corrupt files, concurrent writes), the cache with the real
MiniLM embedder (real similarities), the cache inside a real two-tier cascade (session models),
the ``[cache]`` config section and ``ask --cache``."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from cascade_router.cascade import CACHE_ROUTE, Cascade
from cascade_router.cli import main
from cascade_router.config import DEFAULT_PRICES, ConfigError, build_cascade, config_from_dict, load_config
from cascade_router.models.base import ModelError
from cascade_router.models.registry import CACHE_ENV
from cascade_router.routers import AlwaysLLM, AlwaysSLM, get_router
from cascade_router.stages.cache import (
    CacheError,
    CacheHit,
    CacheSettings,
    SemanticCache,
    SQLiteCacheStore,
    cache_key,
    normalise_question,
    open_cache,
)
from cascade_router.tiers import Tier, TierPrice

PASSAGE = "Paris is the capital and largest city of France."
OTHER_PASSAGE = "Berlin is the capital and largest city of Germany."
Q = "What is the capital of France?"
#: Paraphrases of Q; cosine similarity of the normalised forms with the real model (measured):
#: 0.9886, 0.9665, 0.9578. The default threshold is 0.95.
PARAPHRASES = {"what is France's capital": 0.9886, "Which city is the capital of France?": 0.9665,
               "what's the capital city of France": 0.9578}
#: Same passage, another question: 0.627 with Q.
OTHER_Q = "What is the largest river in France?"
FP = "f" * 64




@pytest.fixture
def cache(tmp_path, emb):
    """A SemanticCache on a fresh SQLite file with the shared embedder (only the store is closed)."""
    c = SemanticCache(SQLiteCacheStore(tmp_path / "cache.sqlite"), emb, threshold=0.95)
    yield c
    c.store.close()


def key(passage=PASSAGE, fingerprint=FP, max_tokens=24, start=None, task="squad"):
    return cache_key(task, passage, fingerprint, max_tokens, start)


def uv(i: int, dim: int = 8) -> np.ndarray:
    """The unit vector along axis ``i``."""
    v = np.zeros(dim, np.float32)
    v[i] = 1.0
    return v


def _entry(q: str) -> dict:
    return {"question": q, "answer": f"answer to {q}", "route": "slm", "original": {"tiers": ["slm"]}}


# --- normalisation and keys -----------------------------------------------------------------------


def test_normalise_question():
    assert normalise_question("  What IS the capital\tof   France?? ") == "what is the capital of france"
    assert normalise_question("Who wrote Hamlet ?!.") == "who wrote hamlet"
    assert normalise_question("What is 3.5?") == "what is 3.5"
    assert normalise_question("why?") == normalise_question("WHY") == "why"


def test_cache_key_covers_every_part():
    k = key()
    assert len(k) == 64 and int(k, 16) >= 0 and k == key()
    others = [key(passage=OTHER_PASSAGE), key(passage=PASSAGE + " "), key(fingerprint="e" * 64),
              key(max_tokens=25), key(start="llm"), key(task="squad-v2"), key(passage=None)]
    assert len({k, *others}) == len(others) + 1
    assert key(passage=None) == key(passage="") and key(start=None) == key(start="")


def test_cache_settings_validate():
    s = CacheSettings()
    assert (s.path, s.threshold, s.ttl, s.max_entries, s.embedder, s.redis_url) == (
        None, 0.95, 7 * 24 * 3600.0, 100_000, "minilm", None)
    assert CacheSettings(threshold=1.0, ttl=None).ttl is None
    for kw, match in [({"threshold": 0}, "threshold"), ({"threshold": 1.5}, "threshold"),
                      ({"threshold": float("nan")}, "threshold"), ({"ttl": 0}, "ttl"), ({"ttl": -1}, "ttl"),
                      ({"ttl": True}, "ttl"), ({"max_entries": 0}, "max_entries"),
                      ({"max_entries": 1.5}, "max_entries"), ({"max_entries": True}, "max_entries")]:
        with pytest.raises(ValueError, match=match):
            CacheSettings(**kw)


# --- the SQLite store with fake unit vectors ------------------------------------------------------


def test_store_exact_and_nearest(tmp_path):
    s = SQLiteCacheStore(tmp_path / "s.sqlite")
    try:
        assert s.size() == 0 and s.exact("k", "a", 1.0) is None and s.nearest("k", uv(0), 1.0) is None
        s.add("k", "a", uv(0), _entry("a"), 10.0)
        s.add("k", "b", uv(1), _entry("b"), 11.0)
        s.add("other", "a", uv(2), _entry("a in other"), 12.0)
        assert s.size() == 3
        assert s.exact("k", "a", 20.0) == (_entry("a"), 10.0)
        assert s.exact("k", "c", 20.0) is None and s.exact("nokey", "a", 20.0) is None
        entry, created, sim = s.nearest("k", uv(1), 20.0)
        assert entry == _entry("b") and created == 11.0 and sim == pytest.approx(1.0, abs=1e-6)
        v = (uv(0) + 3 * uv(1)) / np.sqrt(10)  # cos 0.316 with a, 0.949 with b
        entry, _, sim = s.nearest("k", v.astype(np.float32), 20.0)
        assert entry["question"] == "b" and sim == pytest.approx(3 / np.sqrt(10), abs=1e-5)
        # only entries of the same key are searched
        entry, _, sim = s.nearest("other", uv(0), 20.0)
        assert entry["question"] == "a in other" and sim == pytest.approx(0.0, abs=1e-6)
        # a vector of another dimension finds nothing (no crash)
        assert s.nearest("k", uv(0, dim=16), 20.0) is None
    finally:
        s.close()


def test_store_first_add_after_an_empty_lookup_rebuilds_the_index(tmp_path):
    s = SQLiteCacheStore(tmp_path / "s.sqlite")
    try:
        assert s.nearest("k", uv(3), 1.0) is None  # builds an empty 1-d index for the key
        s.add("k", "x", uv(3), _entry("x"), 2.0)
        entry, _, sim = s.nearest("k", uv(3), 3.0)
        assert entry["question"] == "x" and sim == pytest.approx(1.0, abs=1e-6)
        s.add("k", "y", uv(4), _entry("y"), 4.0)  # now added to the live index
        assert s.nearest("k", uv(4), 5.0)[0]["question"] == "y"
    finally:
        s.close()


def test_store_ttl_expiry(tmp_path):
    s = SQLiteCacheStore(tmp_path / "s.sqlite", ttl_s=10.0)
    try:
        s.add("k", "a", uv(0), _entry("a"), 100.0)
        assert s.exact("k", "a", 110.0) is not None  # exactly ttl old: still alive
        assert s.nearest("k", uv(0), 110.0)[0]["question"] == "a"
        assert s.exact("k", "a", 110.5) is None
        assert s.nearest("k", uv(0), 110.5) is None
        assert s.size() == 1  # expired rows go on the next write
        s.add("k", "b", uv(1), _entry("b"), 200.0)
        assert s.size() == 1 and s.exact("k", "b", 200.0) is not None and s.exact("k", "a", 100.0) is None
        assert s.nearest("k", uv(0), 200.0)[0]["question"] == "b"  # a is gone from the index too
        # use does not extend the life of an entry (ttl counts from when it was stored)
        s.add("k", "c", uv(2), _entry("c"), 300.0)
        assert s.exact("k", "c", 309.0) is not None and s.exact("k", "c", 311.0) is None
    finally:
        s.close()


def test_semantic_cache_ttl_with_real_time(tmp_path, emb):
    c = SemanticCache(SQLiteCacheStore(tmp_path / "t.sqlite", ttl_s=0.3), emb)
    try:
        c.put(Q, key(), "Paris", "slm", {})
        assert c.lookup(Q, key()).answer == "Paris"
        time.sleep(0.45)
        assert c.lookup(Q, key()) is None
        assert c.lookup("Which city is the capital of France?", key()) is None
    finally:
        c.store.close()


def test_store_evicts_the_least_recently_used(tmp_path):
    s = SQLiteCacheStore(tmp_path / "s.sqlite", max_entries=3)
    try:
        for i, q in enumerate("abc"):
            s.add("k", q, uv(i), _entry(q), 10.0 + i)
        assert s.exact("k", "a", 20.0) is not None  # a used at 20: b (used at 11) is now the oldest
        s.add("k", "d", uv(3), _entry("d"), 21.0)
        assert s.size() == 3
        assert s.exact("k", "b", 22.0) is None
        assert {q for q in "acd" if s.exact("k", q, 22.0)} == set("acd")
        entry, _, sim = s.nearest("k", uv(1), 23.0)  # b's vector left the index with its row
        assert entry["question"] != "b" and sim < 0.5
        # a nearest hit counts as a use too: c used at 30, then a new entry evicts a (used at 22)
        assert s.nearest("k", uv(2), 30.0)[0]["question"] == "c"
        s.exact("k", "d", 31.0)
        s.add("k", "e", uv(4), _entry("e"), 32.0)
        assert s.exact("k", "a", 33.0) is None and s.size() == 3
        assert {q for q in "cde" if s.exact("k", q, 34.0)} == set("cde")
        # the bound is over all keys
        s.add("k2", "z", uv(5), _entry("z"), 40.0)
        assert s.size() == 3 and s.exact("k2", "z", 41.0) is not None
    finally:
        s.close()


def test_store_newer_answer_replaces_the_old_one(tmp_path):
    s = SQLiteCacheStore(tmp_path / "s.sqlite")
    try:
        s.add("k", "a", uv(0), {"question": "a", "answer": "old"}, 10.0)
        s.add("k", "b", uv(1), _entry("b"), 11.0)
        s.add("k", "b", uv(1), {"question": "b", "answer": "new"}, 12.0)
        assert s.size() == 2
        assert s.exact("k", "b", 13.0) == ({"question": "b", "answer": "new"}, 12.0)
        entry, created, sim = s.nearest("k", uv(1), 13.0)
        assert entry["answer"] == "new" and created == 12.0 and sim == pytest.approx(1.0, abs=1e-6)
        # a replacement with another vector: the old vector no longer finds it
        s.add("k", "b", uv(2), {"question": "b", "answer": "newer"}, 14.0)
        assert s.size() == 2 and s.exact("k", "b", 15.0)[0]["answer"] == "newer"
        entry, _, sim = s.nearest("k", uv(1), 15.0)
        assert sim == pytest.approx(0.0, abs=1e-6)
        assert s.nearest("k", uv(2), 15.0)[0]["answer"] == "newer"
    finally:
        s.close()


def test_store_persists_across_reopening(tmp_path):
    path = tmp_path / "sub" / "dir" / "p.sqlite"  # folders are created
    s = SQLiteCacheStore(path)
    s.add("k", "a", uv(0), _entry("a"), 10.0)
    s.add("k", "b", uv(1), _entry("b"), 11.0)
    s.close()
    s = SQLiteCacheStore(path)
    try:
        assert s.size() == 2 and s.exact("k", "a", 12.0) == (_entry("a"), 10.0)
        entry, created, sim = s.nearest("k", uv(1), 12.0)  # index rebuilt from the file
        assert entry == _entry("b") and created == 11.0 and sim == pytest.approx(1.0, abs=1e-6)
    finally:
        s.close()


def test_corrupt_or_foreign_file_is_a_cache_error_naming_it(tmp_path):
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(CacheError, match="not a usable cache database") as e:
        SQLiteCacheStore(bad)
    assert str(bad) in str(e.value)
    with pytest.raises(CacheError) as e:
        open_cache(CacheSettings(path=str(bad)))
    assert str(bad) in str(e.value)
    # a SQLite database of another program
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('format', 'someone else 7')")
    db.commit()
    db.close()
    with pytest.raises(CacheError, match="another kind") as e:
        SQLiteCacheStore(other)
    assert str(other) in str(e.value) and "someone else 7" in str(e.value)
    # a table of the same name with other columns
    clash = tmp_path / "clash.sqlite"
    db = sqlite3.connect(clash)
    db.execute("CREATE TABLE entries (x INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(CacheError, match="not a usable cache database") as e:
        SQLiteCacheStore(clash)
    assert str(clash) in str(e.value)
    # a folder where the file should be
    with pytest.raises(CacheError) as e:
        SQLiteCacheStore(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_concurrent_puts_lose_nothing(cache):
    k_each = 5
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(w: int) -> None:
        try:
            start.wait()
            for j in range(k_each):
                cache.put(f"Question {w} number {j} about topic {w * 7 + j}?", key(), f"answer {w}.{j}", "slm",
                          {"tiers": ["slm"]})
                cache.lookup(f"question {w} number {j} about topic {w * 7 + j}", key())
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert cache.store.size() == 8 * k_each
    for w in range(8):
        for j in range(k_each):
            hit = cache.lookup(f"question {w} number {j} about topic {w * 7 + j}", key())
            assert hit is not None and hit.kind == "exact" and hit.answer == f"answer {w}.{j}"


# --- the cache with the real embedder -------------------------------------------------------------


def test_real_similarities_of_the_chosen_pairs(emb):
    """The pairs the tests below rely on, measured with the real model (normalised forms)."""
    qv = emb.embed([normalise_question(Q)])[0]
    for p, expected in PARAPHRASES.items():
        sim = float(qv @ emb.embed([normalise_question(p)])[0])
        assert sim == pytest.approx(expected, abs=0.003) and sim >= 0.955, p
    assert float(qv @ emb.embed([normalise_question(OTHER_Q)])[0]) == pytest.approx(0.627, abs=0.02)


def test_exact_hit_ignores_case_spacing_and_question_mark(cache):
    assert cache.lookup(Q, key()) is None
    cache.put(Q, key(), "Paris", "llm", {"tiers": ["slm", "llm"], "cost_usd": 1e-5})
    for variant in (Q, "  what IS the capital   of France ", "WHAT is the capital of france", Q + "??"):
        hit = cache.lookup(variant, key())
        assert isinstance(hit, CacheHit) and hit.kind == "exact" and hit.similarity == 1.0, variant
        assert hit.answer == "Paris" and hit.route == "llm" and hit.question == Q
        assert hit.original == {"tiers": ["slm", "llm"], "cost_usd": 1e-5}
        assert 0 <= hit.age_s < 60 and 0 <= hit.lookup_s < 5


def test_semantic_hit_above_the_threshold(cache, emb):
    cache.put(Q, key(), "Paris", "slm", {"tiers": ["slm"]})
    for p, expected in PARAPHRASES.items():
        hit = cache.lookup(p, key())
        assert hit is not None and hit.kind == "semantic", p
        assert hit.similarity == pytest.approx(expected, abs=0.003) and hit.similarity >= cache.threshold
        assert hit.answer == "Paris" and hit.question == Q and hit.route == "slm"
        # the similarity is the cosine of the two normalised questions' embeddings
        a, b = emb.embed([normalise_question(Q), normalise_question(p)])
        assert hit.similarity == pytest.approx(float(a @ b), abs=1e-4)


def test_threshold_decides(tmp_path, emb):
    strict = SemanticCache(SQLiteCacheStore(tmp_path / "strict.sqlite"), emb, threshold=0.97)
    try:
        strict.put(Q, key(), "Paris", "slm", {})
        assert strict.lookup("what is France's capital", key()).kind == "semantic"  # 0.9886
        assert strict.lookup("what's the capital city of France", key()) is None  # 0.9578 < 0.97
        assert strict.lookup(Q, key()).kind == "exact"
    finally:
        strict.store.close()


def test_another_question_on_the_same_passage_misses(cache):
    cache.put(Q, key(), "Paris", "slm", {})
    assert cache.lookup(OTHER_Q, key()) is None
    assert cache.lookup("Who wrote Hamlet?", key()) is None
    cache.put(OTHER_Q, key(), "the Loire", "llm", {})
    assert cache.lookup(OTHER_Q, key()).answer == "the Loire"
    assert cache.lookup(Q, key()).answer == "Paris"
    assert cache.store.size() == 2


def test_the_same_question_under_another_key_misses(cache):
    cache.put(Q, key(), "Paris", "slm", {})
    for other in (key(passage=OTHER_PASSAGE), key(fingerprint="0" * 64), key(max_tokens=48), key(start="llm"),
                  key(task="open"), key(passage=None)):
        assert cache.lookup(Q, other) is None
        assert cache.lookup("Which city is the capital of France?", other) is None
    assert cache.lookup(Q, key()).answer == "Paris"


def test_a_newer_answer_to_the_same_question_replaces_the_old_one(cache):
    cache.put(Q, key(), "Lyon", "slm", {})
    cache.put("what is the capital of France", key(), "Paris", "llm", {})  # same normalised question
    assert cache.store.size() == 1
    hit = cache.lookup(Q, key())
    assert hit.answer == "Paris" and hit.route == "llm" and hit.question == "what is the capital of France"
    assert cache.lookup("Which city is the capital of France?", key()).answer == "Paris"


def test_semantic_cache_persists_across_reopening(tmp_path, emb):
    path = tmp_path / "persist.sqlite"
    c = SemanticCache(SQLiteCacheStore(path), emb)
    c.put(Q, key(), "Paris", "slm", {"tiers": ["slm"]})
    c.store.close()
    c = SemanticCache(SQLiteCacheStore(path), emb)
    try:
        assert c.lookup(Q, key()).kind == "exact"
        hit = c.lookup("Which city is the capital of France?", key())
        assert hit.kind == "semantic" and hit.answer == "Paris" and hit.original == {"tiers": ["slm"]}
    finally:
        c.store.close()


def test_open_cache_default_path_and_settings(tmp_path):
    c = open_cache(CacheSettings(threshold=0.9, ttl=60, max_entries=7), default_dir=tmp_path, threads=1)
    try:
        assert c.store.path == tmp_path / "semantic-cache.sqlite" and c.store.path.is_file()
        assert c.threshold == 0.9 and c.store.ttl_s == 60 and c.store.max_entries == 7
        assert c.embedder.dim == 384
        c.put(Q, key(), "Paris", "slm", {})
        assert c.lookup("what's the capital city of France", key()).similarity > 0.95
    finally:
        c.close()
    with pytest.raises(ValueError, match="unknown embedder"):
        open_cache(CacheSettings(path=str(tmp_path / "e.sqlite"), embedder="nope"))


# --- the cache inside a real two-tier cascade (session models) ------------------------------------


def pair(slm, llm, router, cache=None, **kw) -> Cascade:
    """``slm`` -> gate -> ``llm`` on the session models (never close this cascade: it would close
    the shared models and the module's embedder)."""
    return Cascade([Tier("slm", slm, DEFAULT_PRICES["smollm2-135m"]), Tier("llm", llm, DEFAULT_PRICES["gemma3-270m"])],
                   [router], cache=cache, **kw)


class _FailingBackend:
    """A backend that always fails (a down endpoint)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, prompt):
        raise ModelError("connection refused")

    def close(self) -> None:
        pass


def test_cascade_miss_then_hit(slm, llm, cache):
    c = pair(slm, llm, get_router("seed-v1"), cache)
    first = c.answer(Q, PASSAGE)
    assert first.cache_status == "miss" and first.cache is None and first.cache_error is None
    assert first.route in ("slm", "llm") and first.runs and first.cost_usd > 0 and first.total_tokens > 0
    assert "Paris" in first.answer
    assert cache.store.size() == 1

    hit = c.answer(Q, PASSAGE)
    assert hit.route == CACHE_ROUTE == "cache" and hit.cache_status == "hit" and hit.cache_error is None
    assert hit.runs == [] and hit.decisions == [] and hit.cost_usd == 0.0 and hit.total_tokens == 0
    assert hit.answer == first.answer and hit.start == "slm" and not hit.degraded and not hit.escalated
    assert hit.cache.kind == "exact" and hit.cache.route == first.route and hit.cache.question == Q
    assert hit.cache.original == {"tiers": [r.tier for r in first.runs], "cost_usd": first.cost_usd,
                                  "latency_s": first.latency_s, "prompt_tokens": first.prompt_tokens,
                                  "completion_tokens": first.completion_tokens}
    assert hit.latency_s == hit.cache.lookup_s < 5
    d = hit.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["cache"]["route"] == first.route and d["cache_status"] == "hit" and d["route"] == "cache"

    para = c.answer("Which city is the capital of France?", PASSAGE)
    assert para.route == "cache" and para.cache.kind == "semantic" and para.answer == first.answer
    assert para.cache.similarity == pytest.approx(PARAPHRASES["Which city is the capital of France?"], abs=0.003)
    assert cache.store.size() == 1  # hits store nothing

    # use_cache=False runs the tiers and stores nothing
    fresh = c.answer(Q, PASSAGE, use_cache=False)
    assert fresh.route in ("slm", "llm") and fresh.runs and fresh.cache_status is None and fresh.cache is None
    assert cache.store.size() == 1

    # another budget or another starting tier is another key
    other = c.answer(Q, PASSAGE, start="llm")
    assert other.cache_status == "miss" and [r.tier for r in other.runs] == ["llm"]
    assert c.answer(Q, PASSAGE, start="llm").route == "cache"
    assert cache.store.size() == 2
    with pytest.raises(ValueError, match="question is empty"):
        c.answer("  ", PASSAGE)


def test_a_changed_gate_changes_the_fingerprint_and_misses(slm, llm, cache):
    seed = pair(slm, llm, get_router("seed-v1"), cache)
    assert seed.fingerprint() == pair(slm, llm, get_router("seed-v1")).fingerprint()  # the cache is not part of it
    assert len(seed.fingerprint()) == 64
    always_slm = pair(slm, llm, AlwaysSLM(), cache)
    prices = Cascade([Tier("slm", slm, TierPrice(per_call=1.0)), Tier("llm", llm)], [get_router("seed-v1")])
    prints = {seed.fingerprint(), always_slm.fingerprint(), pair(slm, llm, AlwaysLLM()).fingerprint(),
              prices.fingerprint(), pair(slm, llm, get_router("seed-v1"), style="plain").fingerprint()}
    assert len(prints) == 5

    assert seed.answer(Q, PASSAGE).cache_status == "miss"
    assert seed.answer(Q, PASSAGE).route == "cache"
    res = always_slm.answer(Q, PASSAGE)
    assert res.cache_status == "miss" and res.route == "slm" and [r.tier for r in res.runs] == ["slm"]
    assert always_slm.answer(Q, PASSAGE).route == "cache"
    assert cache.store.size() == 2


def test_a_failing_cache_never_fails_the_answer(slm, llm, cache, monkeypatch):
    c = pair(slm, llm, AlwaysSLM(), cache)

    def broken_lookup(question, key):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(cache, "lookup", broken_lookup)
    res = c.answer(Q, PASSAGE)
    assert res.route == "slm" and res.runs and "Paris" in res.answer
    assert res.cache_status == "miss" and res.cache_error == "OperationalError: disk I/O error"
    assert cache.store.size() == 1  # the write still worked
    monkeypatch.undo()

    def broken_put(*args, **kw):
        raise CacheError("cache.sqlite: database is locked")

    monkeypatch.setattr(cache, "put", broken_put)
    res = c.answer(OTHER_Q, PASSAGE)
    assert res.route == "slm" and res.runs and res.cache_status == "miss"
    assert res.cache_error == "CacheError: cache.sqlite: database is locked"
    assert cache.store.size() == 1


def test_degraded_answers_are_not_stored(slm, llm, cache):
    c = pair(slm, _FailingBackend(llm), AlwaysLLM(), cache)
    res = c.answer(Q, PASSAGE)
    assert res.degraded and res.route == "slm" and [f.tier for f in res.failures] == ["llm"]
    assert res.cache_status == "miss" and res.cache_error is None
    assert cache.store.size() == 0
    again = c.answer(Q, PASSAGE)
    assert again.cache_status == "miss" and again.runs and again.degraded


# --- config and CLI -------------------------------------------------------------------------------


def test_cache_section_parses(tmp_path):
    f = tmp_path / "cascade.toml"
    f.write_text('[cache]\npath = "store/c.sqlite"\nthreshold = 0.9\nttl = 60\nmax_entries = 10\n')
    cfg = load_config(f)
    s = cfg.cache
    assert isinstance(s, CacheSettings)
    assert s.path == str(f.resolve().parent / "store" / "c.sqlite")
    assert (s.threshold, s.ttl, s.max_entries, s.embedder, s.redis_url) == (0.9, 60, 10, "minilm", None)
    absolute = tmp_path / "abs.sqlite"
    cfg = config_from_dict({"cache": {"path": str(absolute), "threshold": 1}}, "c.toml", base_dir="/elsewhere")
    assert cfg.cache.path == str(absolute) and cfg.cache.threshold == 1
    assert config_from_dict({"cache": {}}, "c.toml").cache == CacheSettings()
    assert config_from_dict({}, "c.toml").cache is None


@pytest.mark.parametrize("section,match", [
    ({"size": 3}, r"\[cache\] unknown field\(s\) \['size'\]"),
    ({"threshold": 0}, r"\[cache\] threshold must be in \(0, 1\]"),
    ({"threshold": 1.5}, r"\[cache\] threshold must be in \(0, 1\]"),
    ({"threshold": "x"}, r"\[cache\] threshold must be a number"),
    ({"threshold": True}, r"\[cache\] threshold must be a number"),
    ({"ttl": 0}, r"\[cache\] ttl must be a number of seconds in \(0, 1e9\]"),
    ({"ttl": float("inf")}, r"\[cache\] ttl must be a number of seconds in \(0, 1e9\]"),
    ({"path": ""}, r"\[cache\] path must not be empty"),
    ({"ttl": "1d"}, r"\[cache\] ttl must be a number"),
    ({"max_entries": 0}, r"\[cache\] max_entries must be a positive integer"),
    ({"max_entries": 2.5}, r"\[cache\] max_entries must be a positive integer"),
    ({"path": 3}, r"\[cache\] path must be a string"),
    ("on", r"\[cache\] must be a table"),
])
def test_bad_cache_section_is_a_config_error_naming_it(section, match):
    with pytest.raises(ConfigError, match=match) as e:
        config_from_dict({"cache": section}, "my.toml")
    assert str(e.value).startswith("my.toml: [cache]")


def test_bad_cache_file_is_a_config_error_at_build(tmp_path, shared_models):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"\x00garbage" * 100)
    cfg = config_from_dict({"cache": {"path": str(bad)}}, "c.toml")
    with pytest.raises(ConfigError, match=r"c\.toml: \[cache\] .*not a usable cache database") as e:
        build_cascade(cfg)
    assert str(bad) in str(e.value)


def test_ask_with_cache_twice(tmp_path, monkeypatch, shared_models):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert CACHE_ENV == "CASCADE_ROUTER_CACHE_DIR"
    runner = CliRunner()
    args = ["ask", "-q", Q, "-c", PASSAGE, "--cache", "--router", "seed-v1"]
    r1 = runner.invoke(main, args)
    assert r1.exit_code == 0, r1.output
    assert "cache: miss (answer stored)" in r1.stdout
    route1 = next(ln for ln in r1.stdout.splitlines() if ln.startswith("answered by: "))
    assert route1.split()[2] in ("slm", "llm")
    assert (tmp_path / "semantic-cache.sqlite").is_file()

    r2 = runner.invoke(main, args)
    assert r2.exit_code == 0, r2.output
    lines = r2.stdout.splitlines()
    assert lines[0] == r1.stdout.splitlines()[0]  # the same answer
    hit = next(ln for ln in lines if ln.startswith("answered by: "))
    assert hit.startswith(f"answered by: cache (exact match, similarity 1.000, of {Q!r}; first answered by "
                          f"{route1.split()[2]}, ")
    assert "tokens: 0 " in r2.stdout and "cost: $0.00000000" in r2.stdout and "cache: miss" not in r2.stdout
    assert not any(ln.startswith("gate after") for ln in lines)

    r3 = runner.invoke(main, ["ask", "-q", "Which city is the capital of France?", "-c", PASSAGE, "--cache",
                              "--json"])
    assert r3.exit_code == 0, r3.output
    d = json.loads(r3.stdout)
    assert d["route"] == "cache" and d["cache_status"] == "hit" and d["runs"] == []
    assert d["cache"]["kind"] == "semantic" and d["cache"]["similarity"] >= 0.95 and d["cache"]["question"] == Q

    r4 = runner.invoke(main, ["ask", "-q", Q, "-c", PASSAGE])  # without --cache: the tiers answer
    assert r4.exit_code == 0 and "answered by: cache" not in r4.stdout and "cache:" not in r4.stdout
