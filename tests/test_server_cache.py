"""The semantic cache behind the HTTP server: a real two-tier cascade (session models) with a
SemanticCache on a fresh SQLite file per test, served by uvicorn in a thread and called with the
official ``openai`` client (``with_raw_response`` for the headers)."""

from __future__ import annotations

import sqlite3

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cascade_router.cascade import Cascade
from cascade_router.config import DEFAULT_PRICES
from cascade_router.routers import get_router
from cascade_router.server import BackgroundServer, create_app
from cascade_router.stages.cache import SemanticCache, SQLiteCacheStore
from cascade_router.tiers import Tier

PASSAGE = "Paris is the capital and largest city of France."
Q = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"  # 0.9665 with Q (normalised), above 0.95
OTHER_Q = "What is the largest river in France?"  # 0.627 with Q
SLM_ID, LLM_ID = "smollm2-135m", "gemma3-270m"


def msg(question: str, passage: str = PASSAGE) -> list[dict]:
    return [{"role": "user", "content": f"Passage: {passage}\nQuestion: {question}"}]




@pytest.fixture
def served(tmp_path, emb, slm, llm):
    """``(server, cache)``: a fresh cache and app per test (so metrics start at zero). The cascade
    is never closed: that would close the session models and the module's embedder."""
    cache = SemanticCache(SQLiteCacheStore(tmp_path / "cache.sqlite"), emb, threshold=0.95)
    cascade = Cascade([Tier("slm", slm, DEFAULT_PRICES[SLM_ID]), Tier("llm", llm, DEFAULT_PRICES[LLM_ID])],
                      [get_router("seed-v1")], max_tokens=24, cache=cache)
    with BackgroundServer(create_app(cascade)) as srv:
        yield srv, cache
    cache.store.close()


def client(srv: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def chat(srv, question: str, passage: str = PASSAGE, **kw):
    """``(parsed response, headers, cascade extension object)``."""
    raw = client(srv).chat.completions.with_raw_response.create(model="cascade", messages=msg(question, passage), **kw)
    assert raw.status_code == 200
    resp = raw.parse()
    return resp, raw.headers, resp.model_extra["cascade"]


def samples(srv) -> dict:
    """``/metrics`` as ``{(sample name, sorted label items): value}``."""
    out = {}
    for fam in text_string_to_metric_families(httpx.get(srv.url + "/metrics").text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def lookups(srv) -> dict:
    m = samples(srv)
    res = {r: m[("cascade_cache_lookups_total", (("result", r),))] for r in ("hit", "miss", "bypass")}
    res["errors"] = m[("cascade_cache_errors_total", ())]
    return res


def test_miss_then_hit(served):
    srv, cache = served
    first, h1, ext1 = chat(srv, Q)
    assert h1["x-cascade-cache"] == "miss" and h1["x-cascade-route"] == ext1["route"] in ("slm", "llm")
    assert ext1["cache"] == {"status": "miss", "error": None}
    assert first.model in (SLM_ID, LLM_ID) and first.usage.total_tokens > 0 and ext1["tiers"]
    assert "Paris" in first.choices[0].message.content
    assert cache.store.size() == 1

    hit, h2, ext2 = chat(srv, Q)
    assert h2["x-cascade-cache"] == "hit" and h2["x-cascade-route"] == "cache"
    assert hit.model == "cache" and ext2["route"] == "cache"
    assert hit.choices[0].message.content == first.choices[0].message.content
    assert hit.choices[0].finish_reason == "stop"
    assert (hit.usage.prompt_tokens, hit.usage.completion_tokens, hit.usage.total_tokens) == (0, 0, 0)
    assert ext2["tiers"] == [] and ext2["gates"] == [] and ext2["cost_usd"] == 0 and ext2["failures"] == []
    assert ext2["start"] == "slm" and ext2["escalated"] is False and ext2["degraded"] is False
    c = ext2["cache"]
    assert c["status"] == "hit" and c["error"] is None and c["kind"] == "exact" and c["similarity"] == 1.0
    assert c["original_route"] == ext1["route"] and c["cached_question"] == Q
    assert c["original"]["tiers"] == [t["name"] for t in ext1["tiers"]]
    assert c["original"]["cost_usd"] == pytest.approx(ext1["cost_usd"])
    assert c["original"]["prompt_tokens"] + c["original"]["completion_tokens"] == first.usage.total_tokens
    assert c["age_s"] >= 0 and 0 <= c["lookup_s"] < 5

    para, h3, ext3 = chat(srv, PARAPHRASE)
    assert h3["x-cascade-cache"] == "hit" and para.model == "cache"
    assert ext3["cache"]["kind"] == "semantic" and ext3["cache"]["similarity"] == pytest.approx(0.9665, abs=0.003)
    assert ext3["cache"]["cached_question"] == Q and ext3["question"] == PARAPHRASE
    assert para.choices[0].message.content == first.choices[0].message.content

    # the legacy completions endpoint shares the key (same task, passage, budget, cascade)
    raw = client(srv).completions.with_raw_response.create(
        model="cascade", prompt=f"Passage: {PASSAGE}\nQuestion: {Q}")
    comp = raw.parse()
    assert raw.headers["x-cascade-cache"] == "hit" and comp.model == "cache" and comp.usage.total_tokens == 0
    assert comp.choices[0].text == first.choices[0].message.content

    # another budget is another key
    _, h4, ext4 = chat(srv, Q, max_tokens=16)
    assert h4["x-cascade-cache"] == "miss" and ext4["tiers"] and ext4["max_tokens"] == 16
    assert cache.store.size() == 2
    assert lookups(srv) == {"hit": 3, "miss": 2, "bypass": 0, "errors": 0}


def test_another_question_or_passage_misses(served):
    srv, cache = served
    chat(srv, Q)
    _, h, ext = chat(srv, OTHER_Q)
    assert h["x-cascade-cache"] == "miss" and ext["route"] in ("slm", "llm") and ext["tiers"]
    assert ext["cache"]["status"] == "miss"
    _, h, ext = chat(srv, Q, passage="Lyon is a large city in France, on the Rhone.")
    assert h["x-cascade-cache"] == "miss" and ext["tiers"]
    assert cache.store.size() == 3


def test_no_cache_header_bypasses(served):
    srv, cache = served
    first, _, ext1 = chat(srv, Q)
    resp, h, ext = chat(srv, Q, extra_headers={"x-cascade-cache-control": "no-cache"})
    assert h["x-cascade-cache"] == "miss" and h["x-cascade-route"] in ("slm", "llm")
    assert resp.model in (SLM_ID, LLM_ID) and resp.usage.total_tokens > 0 and ext["tiers"]
    assert ext["cache"] == {"status": "bypass", "error": None}
    assert cache.store.size() == 1
    # a header value with other directives also bypasses; without it the repeat is a hit
    _, h, ext = chat(srv, Q, extra_headers={"x-cascade-cache-control": "max-age=0, No-Cache"})
    assert ext["cache"]["status"] == "bypass"
    _, h, ext = chat(srv, Q)
    assert h["x-cascade-cache"] == "hit" and ext["cache"]["original_route"] == ext1["route"]
    m = samples(srv)
    assert lookups(srv) == {"hit": 1, "miss": 1, "bypass": 2, "errors": 0}
    assert m[("cascade_answers_total", (("mode", "routed"), ("route", "cache")))] == 1


def test_streaming_a_hit(served):
    srv, _ = served
    first, _, ext1 = chat(srv, Q)
    with client(srv).chat.completions.with_streaming_response.create(
        model="cascade", messages=msg(Q), stream=True, stream_options={"include_usage": True},
    ) as raw:
        assert raw.headers["x-cascade-cache"] == "hit" and raw.headers["x-cascade-route"] == "cache"
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = list(raw.parse())
    assert all(c.object == "chat.completion.chunk" and c.model == "cache" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == first.choices[0].message.content
    (finish,) = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish.choices[0].finish_reason == "stop"
    ext = finish.model_extra["cascade"]
    assert ext["route"] == "cache" and ext["cache"]["status"] == "hit"
    assert ext["cache"]["original_route"] == ext1["route"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 0
    # the completions endpoint streams a hit too
    with client(srv).completions.with_streaming_response.create(
        model="cascade", prompt=f"Passage: {PASSAGE}\nQuestion: {Q}", stream=True,
    ) as raw:
        assert raw.headers["x-cascade-cache"] == "hit"
        events = list(raw.parse())
    assert "".join(e.choices[0].text for e in events if e.choices) == first.choices[0].message.content
    assert lookups(srv) == {"hit": 2, "miss": 1, "bypass": 0, "errors": 0}


def test_a_failing_store_never_fails_a_request(served, monkeypatch):
    srv, cache = served

    def broken(*args, **kw):
        raise sqlite3.OperationalError("disk I/O error")

    for name in ("exact", "nearest", "add", "size"):
        monkeypatch.setattr(cache.store, name, broken)
    for i in range(2):
        resp, h, ext = chat(srv, Q)
        assert h["x-cascade-cache"] == "miss" and h["x-cascade-route"] in ("slm", "llm")
        assert resp.model in (SLM_ID, LLM_ID) and "Paris" in resp.choices[0].message.content
        assert ext["cache"] == {"status": "miss", "error": "OperationalError: disk I/O error"}
    # streamed too
    with client(srv).chat.completions.with_streaming_response.create(model="cascade", messages=msg(Q),
                                                                      stream=True) as raw:
        assert raw.status_code == 200 and raw.headers["x-cascade-cache"] == "miss"
        assert "Paris" in "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    m = samples(srv)
    assert lookups(srv) == {"hit": 0, "miss": 3, "bypass": 0, "errors": 3}
    assert m[("cascade_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "200")))] == 3
    assert not any(n == "cascade_requests_total" and dict(lab).get("status", "").startswith("5") for n, lab in m)
    monkeypatch.undo()
    # the store works again: the next request is stored, then hit
    assert chat(srv, Q)[1]["x-cascade-cache"] == "miss"
    assert chat(srv, Q)[1]["x-cascade-cache"] == "hit"


def test_a_failing_embedder_never_fails_a_request(served, emb, monkeypatch):
    srv, cache = served
    from cascade_router.embeddings import EmbeddingError

    def broken(texts):
        raise EmbeddingError("all-MiniLM-L6-v2-int8: onnxruntime failed: out of memory")

    monkeypatch.setattr(emb, "embed", broken)
    resp, h, ext = chat(srv, Q)
    assert h["x-cascade-cache"] == "miss" and resp.usage.total_tokens > 0
    assert ext["cache"]["error"].startswith("EmbeddingError: ") and "out of memory" in ext["cache"]["error"]
    assert cache.store.size() == 0
    assert lookups(srv)["errors"] == 1
