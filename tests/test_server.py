"""`cascade-router serve`: the real server (uvicorn in a thread) with a real cascade on the embedded
models, called with the official `openai` client.

The embedded models come from the session fixtures ``slm``/``llm`` of tests/conftest.py (loaded
once, threads=2); the test of a failing LLM endpoint loads its own Gemma behind llama.cpp's HTTP
server and stops it. Every request asks the same question about the same passage, so llama.cpp's
prompt cache usually keeps repeated calls short (no test relies on it for correctness).
"""

from __future__ import annotations

import gc
import threading
import time

import httpx
import openai
import pytest
from click.testing import CliRunner

from cascade_router.cascade import Cascade
from cascade_router.config import DEFAULT_PRICES
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.models.registry import load_model
from cascade_router.routers import AlwaysLLM, AlwaysSLM, get_router
from cascade_router.server import (
    BackgroundServer,
    ServerSettings,
    create_app,
    is_loopback,
    load_api_keys,
    split_question,
)
from cascade_router.tiers import Tier

PASSAGE = "Hamlet is a tragedy written by William Shakespeare around 1600."
QUESTION = "Who wrote Hamlet?"
USER_MSG = f"Passage: {PASSAGE}\nQuestion: {QUESTION}"
KEY = "sk-test-key"
SLM_ID, LLM_ID = "smollm2-135m", "gemma3-270m"


# ---------------------------------------------------------------- no models needed

def test_split_question_convention():
    assert split_question(USER_MSG) == (QUESTION, PASSAGE, "passage")
    assert split_question("Context:\nSome text.\n\nquestion: Why?") == ("Why?", "Some text.", "context")
    assert split_question("What is the capital of France?") == ("What is the capital of France?", None, None)
    assert split_question("Question: Only a question") == ("Only a question", None, None)


def test_loopback_and_keys(monkeypatch):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")
    monkeypatch.setenv("CASCADE_TEST_KEYS", " a, b ,")
    assert load_api_keys("CASCADE_TEST_KEYS") == ("a", "b")
    monkeypatch.delenv("CASCADE_TEST_KEYS")
    with pytest.raises(ValueError, match="CASCADE_TEST_KEYS"):
        load_api_keys("CASCADE_TEST_KEYS")


@pytest.mark.parametrize("field,bad", [("stream", "yes"), ("stream", 1), ("max_tokens", "10"), ("max_tokens", 10.5),
                                       ("n", "1"), ("stream_options", {"include_usage": "true"})])
def test_request_schema_is_strict(field, bad):
    from pydantic import ValidationError

    from cascade_router.server.schemas import ChatCompletionRequest, CompletionRequest

    msgs = [{"role": "user", "content": "x"}]
    with pytest.raises(ValidationError, match=field):
        ChatCompletionRequest.model_validate({"messages": msgs, field: bad})
    with pytest.raises(ValidationError, match=field):
        CompletionRequest.model_validate({"prompt": "x", field: bad})
    ok = ChatCompletionRequest.model_validate({"messages": msgs, "stream": True, "max_tokens": 10,
                                               "stream_options": {"include_usage": True}, "temperature": "0.2"})
    assert ok.stream is True and ok.max_tokens == 10 and ok.stream_options.include_usage is True


def test_schema_errors_on_stub_tiers(openai_stub):
    """No model: both tiers are a stub endpoint. Nulls mean defaults; a lone surrogate is the
    client's error (400 naming the field), not a tier failure; params name request fields."""
    tier = OpenAICompatBackend("stub", openai_stub.url, family="base", api_key_env=None, retries=0)
    with BackgroundServer(create_app(Cascade([Tier("slm", tier), Tier("llm", tier)], [AlwaysSLM()]))) as srv:
        url = srv.url + "/v1/chat/completions"
        msgs = [{"role": "user", "content": "Capital of France?"}]
        r = httpx.post(url, json={"messages": msgs, "stream": None, "n": None, "stream_options": {"include_usage": None}})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Paris"
        bad = b'{"messages": [{"role": "user", "content": "x\\ud800?"}]}'
        r = httpx.post(url, content=bad, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content", r.text
        r = httpx.post(srv.url + "/v1/completions", content=b'{"prompt": "x\\ud800?"}',
                       headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text
        r = httpx.post(url, json={"messages": [{"role": "user", "content": 5}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content", r.text
        r = httpx.post(url, json={"messages": msgs, "max_tokens": 5, "max_completion_tokens": 100_000})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_completion_tokens", r.text
        assert len(openai_stub.requests) == 1  # only the valid request reached a tier


def test_model_field_names_tiers():
    """Tier names first, then model ids (the first tier with it), then the slm/llm aliases; every
    listed id is unique and selects its tier."""
    from cascade_router.server.app import TierDirectory

    d = TierDirectory(["small", "medium", "large"], ["smollm2-135m", "gemma3-270m", "gemma3-270m"])
    assert d.listed == {"small": "smollm2-135m", "medium": "medium", "large": "large"}
    assert [d.resolve(m) for m in ("small", "smollm2-135m", "gemma3-270m", "large", "slm", "llm")] == \
        ["small", "small", "medium", "large", "small", "large"]
    assert [d.resolve(m) for m in (None, "", "cascade", "gpt-4o", "abstain")] == [None] * 5
    assert d.tier_aliases("small") == ["small", "slm"] and d.tier_aliases("medium") == ["medium"]
    d = TierDirectory(["llm", "slm"], ["a", "b"])  # literal names win over the aliases
    assert d.resolve("slm") == "slm" and d.resolve("llm") == "llm" and d.tier_aliases("llm") == ["llm"]
    d = TierDirectory(["x", "acme/y@2"], ["acme/y@2", "cascade"])  # ids clashing with a name or "cascade"
    assert d.listed == {"x": "x", "acme/y@2": "acme/y@2"}
    assert d.resolve("acme/y@2") == "acme/y@2" and d.resolve("x") == "x"
    for ids in (["m", "m", "n"], ["a", "b", "c"], ["b", "a", "a"]):
        d = TierDirectory(["a", "b", "c"], ids)
        listed = list(d.listed.values())
        assert len(set(listed)) == 3 and all(d.resolve(v) == k for k, v in d.listed.items()), ids


def test_cli_refuses_unsafe_binds(monkeypatch):
    from cascade_router.commands.serve import command

    monkeypatch.delenv("CASCADE_TEST_UNSET", raising=False)
    r = CliRunner().invoke(command, ["--host", "0.0.0.0"])
    assert r.exit_code == 2 and "non-loopback" in r.output and "--api-key-env" in r.output
    r = CliRunner().invoke(command, ["--host", "0.0.0.0", "--api-key-env", "CASCADE_TEST_UNSET"])
    assert r.exit_code == 2 and "CASCADE_TEST_UNSET is unset or empty" in r.output
    r = CliRunner().invoke(command, ["--max-concurrency", "0"])
    assert r.exit_code == 2


# ---------------------------------------------------------------- fixtures with the real models

@pytest.fixture(scope="module")
def tiers(slm, llm):
    """The session's embedded models (tests/conftest.py: loaded once, threads=2; never closed here)."""
    return slm, llm


def _cascade(slm, llm, router, on_error="degrade", label=None) -> Cascade:
    """The two-tier cascade ``slm`` -> ``llm`` with ``router`` (labelled ``label``) as the gate between them."""
    return Cascade([Tier("slm", slm, DEFAULT_PRICES[SLM_ID]), Tier("llm", llm, DEFAULT_PRICES[LLM_ID])],
                   [router], max_tokens=24, on_error=on_error, gate_labels=[label] if label else None)


@pytest.fixture(scope="module")
def server(tiers):
    app = create_app(_cascade(*tiers, get_router("seed-v1"), label="seed-v1"), ServerSettings(api_keys=(KEY,)))
    with BackgroundServer(app) as srv:
        yield srv


def _client(srv: BackgroundServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def baseline(server):
    """The routed non-streaming answer to USER_MSG: (parsed response, headers)."""
    raw = _client(server).chat.completions.with_raw_response.create(
        model="cascade", messages=[{"role": "user", "content": USER_MSG}])
    return raw.parse(), raw.headers


def _tier_tokens(ext: dict, tier: str) -> int:
    """Prompt + completion tokens of ``tier`` in the ``cascade`` object (0 when it did not run)."""
    t = _run(ext, tier)
    return t["prompt_tokens"] + t["completion_tokens"] if t else 0


def _run(ext: dict, tier: str) -> dict | None:
    """The entry of ``tier`` in the ``cascade.tiers`` list, or None if it did not run."""
    return next((t for t in ext["tiers"] if t["name"] == tier), None)


def test_chat_completion_routed(baseline):
    resp, headers = baseline
    ext = resp.model_extra["cascade"]
    assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.role == "assistant" and resp.choices[0].finish_reason in ("stop", "length")
    answer = resp.choices[0].message.content
    assert "Shakespeare" in answer
    assert headers["x-cascade-route"] == ext["route"] in ("slm", "llm")
    assert "x-cascade-degraded" not in headers
    assert resp.model == (SLM_ID if ext["route"] == "slm" else LLM_ID)
    assert ext["start"] == "slm" and ext["escalated"] == (ext["route"] == "llm") and ext["degraded"] is False
    assert ext["error"] is None and ext["failures"] == [] and ext["max_tokens"] == 24
    assert ext["task"] == "squad" and ext["passage_chars"] == len(PASSAGE) and ext["question"] == QUESTION
    assert [t["name"] for t in ext["tiers"]] == (["slm"] if ext["route"] == "slm" else ["slm", "llm"])
    small = ext["tiers"][0]
    assert small["model"] == SLM_ID and small["latency_s"] > 0 and small["cost_usd"] > 0
    assert set(small["signals"]) >= {"mean_logprob"} and small["finish_reason"] in ("stop", "length")
    assert set(small) == {"name", "model", "answer", "prompt_tokens", "completion_tokens", "cached_prompt_tokens",
                          "latency_s", "finish_reason", "truncated_context", "cost_usd", "signals",
                          "unavailable_signals", "queue_s"}
    (gate,) = ext["gates"]
    assert gate["after"] == "slm" and gate["router"] == "seed-v1" and isinstance(gate["threshold"], float)
    assert gate["outcome"] == ("escalate" if ext["route"] == "llm" else "accept")
    assert gate["reasons"] and {"signal", "value", "op", "threshold", "fired"} <= set(gate["reasons"][0])
    assert ext["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in ext["tiers"]))
    assert resp.usage.total_tokens == _tier_tokens(ext, "slm") + _tier_tokens(ext, "llm")
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_streaming_matches_non_streaming(server, baseline):
    resp, _ = baseline
    with _client(server).chat.completions.with_streaming_response.create(
        model="cascade", messages=[{"role": "user", "content": USER_MSG}], stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        assert raw.headers["x-cascade-route"] == resp.model_extra["cascade"]["route"]
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = list(raw.parse())
    assert all(c.object == "chat.completion.chunk" and c.model == resp.model for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == resp.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].model_extra["cascade"]["route"] == resp.model_extra["cascade"]["route"]
    assert [t["name"] for t in finish[0].model_extra["cascade"]["tiers"]] == \
        [t["name"] for t in resp.model_extra["cascade"]["tiers"]]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == resp.usage.total_tokens
    assert len(chunks) >= 4  # role, >= 1 content piece, finish, usage


def test_system_passage_and_slm_alias(server, baseline):
    """A 'Passage:' system message gives the same prompt as the inline convention; model="slm"
    (the first tier) starts where routing starts, so the gate after it still decides."""
    resp0, _ = baseline
    ext0 = resp0.model_extra["cascade"]
    raw = _client(server).chat.completions.with_raw_response.create(
        model="slm", messages=[{"role": "system", "content": f"Passage: {PASSAGE}"},
                               {"role": "user", "content": QUESTION}])
    resp = raw.parse()
    ext = resp.model_extra["cascade"]
    assert ext["start"] == "slm" and ext["route"] == ext0["route"] == raw.headers["x-cascade-route"]
    assert [g["after"] for g in ext["gates"]] == ["slm"] and ext["gates"][0]["outcome"] == ext0["gates"][0]["outcome"]
    assert ext["task"] == "squad" and ext["passage_chars"] == len(PASSAGE)
    assert ext["tiers"][0]["answer"] == ext0["tiers"][0]["answer"]
    assert resp.choices[0].message.content == resp0.choices[0].message.content
    assert resp.usage.total_tokens == resp0.usage.total_tokens > 0


def test_start_at_llm_and_completions_endpoint(server, baseline):
    """model = the last tier's model id starts there: the SLM and its gate are skipped."""
    resp0, _ = baseline
    c = _client(server)
    raw = c.chat.completions.with_raw_response.create(model=LLM_ID, messages=[{"role": "user", "content": USER_MSG}])
    resp = raw.parse()
    ext = resp.model_extra["cascade"]
    assert raw.headers["x-cascade-route"] == "llm" and resp.model == LLM_ID and ext["start"] == "llm"
    assert [t["name"] for t in ext["tiers"]] == ["llm"] and ext["gates"] == [] and ext["escalated"] is False
    assert resp.usage.total_tokens == _tier_tokens(ext, "llm") > 0
    same = c.chat.completions.create(model="llm", messages=[{"role": "user", "content": USER_MSG}])
    assert same.model_extra["cascade"]["start"] == "llm" and same.choices[0].message.content == resp.choices[0].message.content
    comp = c.completions.create(model="cascade", prompt=USER_MSG)
    assert comp.object == "text_completion" and comp.choices[0].text == resp0.choices[0].message.content
    assert comp.model_extra["cascade"]["route"] == resp0.model_extra["cascade"]["route"]
    assert comp.model == resp0.model and comp.usage.total_tokens == resp0.usage.total_tokens
    other = c.completions.create(model="gpt-4o", prompt=USER_MSG, max_tokens=8)  # unknown names route
    assert other.model_extra["cascade"]["start"] == "slm" and other.model_extra["cascade"]["max_tokens"] == 8


def test_errors_are_openai_shaped(server):
    c = _client(server)
    with pytest.raises(openai.BadRequestError) as ei:
        c.chat.completions.create(model="cascade", messages=[{"role": "wizard", "content": "hi"}])
    assert ei.value.status_code == 400
    err = ei.value.body
    assert err["type"] == "invalid_request_error" and err["param"] == "messages.0.role" and err["message"]
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="cascade", messages=[])
    with pytest.raises(openai.BadRequestError) as ei:
        c.chat.completions.create(model="cascade", messages=[{"role": "user", "content": QUESTION}], max_tokens=100_000)
    assert ei.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as ei:
        c.chat.completions.create(model="cascade", messages=[{"role": "system", "content": "Be brief."}])
    assert ei.value.body["param"] == "messages"
    with pytest.raises(openai.AuthenticationError) as ei:
        _client(server, key="sk-wrong").models.list()
    assert ei.value.status_code == 401

    url = server.url + "/v1/chat/completions"
    auth = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(url, json={"messages": [{"role": "user", "content": "x"}]})  # no key
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(url, content=b'{"messages": [', headers={**auth, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    big = b'{"messages": "' + b"x" * (2 << 20) + b'"}'
    r = httpx.post(url, content=big, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(url, content=(big[i:i + 65536] for i in range(0, len(big), 65536)),  # chunked, no length
                   headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413
    for field, bad in (("stream", "yes"), ("max_tokens", "10"), ("n", 1.0)):  # strict: never coerced
        r = httpx.post(url, json={"messages": [{"role": "user", "content": "x"}], field: bad}, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["param"] == field, (field, r.text)
    r = httpx.get(server.url + "/v1/nothing", headers=auth)
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(server.url + "/health").status_code == 200  # still serving




def test_models_health_metrics(server, baseline, metric_samples):
    c = _client(server)
    models = c.models.list().data
    assert [m.id for m in models] == ["cascade", SLM_ID, LLM_ID]
    assert [m.model_extra["cascade"] for m in models] == [
        {"tier": "cascade", "aliases": []}, {"tier": "slm", "aliases": ["slm"]}, {"tier": "llm", "aliases": ["llm"]}]
    assert c.models.retrieve(LLM_ID).model_extra["cascade"]["tier"] == "llm"
    assert c.models.retrieve("slm").id == SLM_ID  # a tier name selects the tier's object
    with pytest.raises(openai.NotFoundError) as ei:
        c.models.retrieve("gpt-4o")
    assert ei.value.body["code"] == "model_not_found" and ei.value.body["param"] == "model"
    h = httpx.get(server.url + "/health").json()  # open without a key
    assert h["status"] == "ok" and h["models"] == {"cascade": "cascade", "slm": SLM_ID, "llm": LLM_ID}
    assert h["tiers"] == [{"name": "slm", "model": SLM_ID, "breaker": None}, {"name": "llm", "model": LLM_ID, "breaker": None}]
    assert h["on_llm_error"] == "degrade" and {"version", "running", "queued", "uptime_s"} <= set(h)
    assert httpx.get(server.url + "/metrics").status_code == 401
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = metric_samples(r.text)
    assert samples[("cascade_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "200")))] >= 1
    assert samples[("cascade_requests_total", (("endpoint", "/v1/models/{model_id}"), ("status", "404")))] >= 1
    assert samples[("cascade_tier_tokens_total", (("kind", "prompt"), ("tier", "slm")))] > 0
    assert samples[("cascade_tier_calls_total", (("outcome", "ok"), ("tier", "slm")))] >= 1
    assert samples[("cascade_tier_calls_total", (("outcome", "error"), ("tier", "llm")))] == 0
    assert samples[("cascade_tier_latency_seconds_count", (("tier", "slm"),))] >= 1
    routed = sum(v for (n, lab), v in samples.items() if n == "cascade_answers_total" and ("mode", "routed") in lab)
    assert routed >= 1
    assert ("cascade_escalations_total", (("tier", "slm"),)) in samples
    assert ("cascade_abstentions_total", ()) in samples and ("cascade_in_flight_requests", ()) in samples
    assert not any(lab and dict(lab).get("tier") in (SLM_ID, LLM_ID) for _, lab in samples)  # names, not ids


class _GatedBackend:
    """The real SLM, but each generation first waits for ``gate`` (to hold a request in flight)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, prompt):
        assert self.gate.wait(60)
        return self._inner.generate(prompt)

    def close(self) -> None:
        pass


def test_queue_full_gets_429(tiers):
    slm, llm = tiers
    gated = _GatedBackend(slm)
    app = create_app(_cascade(gated, llm, AlwaysSLM()), ServerSettings(max_concurrency=1, max_queue=0))
    state = app.state.cascade_server
    with BackgroundServer(app) as srv:
        c = _client(srv)
        first: dict = {}
        t = threading.Thread(target=lambda: first.update(
            r=c.chat.completions.create(model="cascade", messages=[{"role": "user", "content": USER_MSG}])))
        t.start()
        deadline = time.monotonic() + 10
        while state.pending < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state.pending == 1
        with pytest.raises(openai.RateLimitError) as ei:
            c.chat.completions.create(model="cascade", messages=[{"role": "user", "content": USER_MSG}])
        assert ei.value.status_code == 429 and ei.value.body["code"] == "queue_full"
        gated.gate.set()
        t.join(60)
        assert "Shakespeare" in first["r"].choices[0].message.content  # the admitted one completes


def test_llm_endpoint_goes_down_degrade_and_fail(tiers):
    """LLM tier = a real llama.cpp OpenAI-compatible HTTP server, stopped mid-test."""
    slm, _ = tiers
    backing = load_model(LLM_ID, threads=2)  # its own llama.cpp server, so closing it hurts no one else
    url = backing.base_url
    remote = OpenAICompatBackend(LLM_ID, url, family="base", api_key_env=None, timeout_s=30, retries=1)
    degrade = create_app(_cascade(slm, remote, AlwaysLLM(), on_error="degrade"))
    fail = create_app(_cascade(slm, remote, AlwaysLLM(), on_error="raise"))
    msgs = [{"role": "user", "content": USER_MSG}]
    try:
        with BackgroundServer(degrade) as sd, BackgroundServer(fail) as sf:
            cd, cf = _client(sd), _client(sf)
            raw = cd.chat.completions.with_raw_response.create(model="cascade", messages=msgs)
            resp = raw.parse()
            ext = resp.model_extra["cascade"]
            assert raw.headers["x-cascade-route"] == "llm" and resp.model == LLM_ID
            assert ext["escalated"] and not ext["degraded"] and _tier_tokens(ext, "llm") > 0
            assert ext["gates"][0]["outcome"] == "escalate" and ext["gates"][0]["score"] == "inf"  # json-safe inf
            assert resp.usage.total_tokens == _tier_tokens(ext, "slm") + _tier_tokens(ext, "llm")

            backing.close()  # the LLM's HTTP server goes away
            gc.collect()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    httpx.get(url + "/health", timeout=1)
                    time.sleep(0.1)
                except httpx.TransportError:
                    break
            else:
                pytest.fail("llama.cpp server did not stop")

            raw = cd.chat.completions.with_raw_response.create(model="cascade", messages=msgs)
            resp = raw.parse()
            ext = resp.model_extra["cascade"]
            assert raw.headers["x-cascade-route"] == "slm" and raw.headers["x-cascade-degraded"] == "true"
            assert ext["degraded"] is True and ext["escalated"] is True and "unreachable" in ext["error"]
            assert [f["tier"] for f in ext["failures"]] == ["llm"] and "unreachable" in ext["failures"][0]["error"]
            assert resp.model == SLM_ID and resp.choices[0].message.content == _run(ext, "slm")["answer"]
            assert _run(ext, "llm") is None and resp.usage.total_tokens == _tier_tokens(ext, "slm")

            with pytest.raises(openai.InternalServerError) as ei:
                cf.chat.completions.create(model="cascade", messages=msgs)
            assert ei.value.status_code == 503 and ei.value.body["code"] == "tier_unavailable"
            assert ei.value.body["message"].startswith("model tier llm unavailable: ")

            # both servers keep serving
            assert httpx.get(sf.url + "/health").json()["status"] == "ok"
            assert httpx.get(sf.url + "/health").json()["on_llm_error"] == "fail"
            with pytest.raises(openai.InternalServerError) as ei:  # starting at the dead tier
                cf.chat.completions.create(model=LLM_ID, messages=msgs)
            assert ei.value.body["message"].startswith("model tier llm unavailable: ")
            m = httpx.get(sd.url + "/metrics").text
            assert "cascade_degraded_total 1.0" in m
            assert 'cascade_tier_calls_total{outcome="error",tier="llm"} 1.0' in m
            assert 'cascade_escalations_total{tier="slm"} 2.0' in m
            mf = httpx.get(sf.url + "/metrics").text
            assert 'cascade_tier_calls_total{outcome="error",tier="llm"} 2.0' in mf
            assert 'cascade_degraded_total 0.0' in mf
    finally:
        remote.close()
        backing.close()


def test_cli_port_zero_banner_shows_the_bound_port(openai_stub):
    """`serve --port 0` binds a free port and its banner prints that port, which then answers."""
    import re
    import subprocess
    import sys

    spec = f"stub@{openai_stub.url}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cascade_router", "serve", "--port", "0", "--slm", spec, "--llm", spec,
         "--router", "always-slm", "--log-level", "warning"],
        stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "tiers=slm:stub,llm:stub gates=slm:always-slm " in line, line
        m = re.search(r"OpenAI base URL http://127\.0\.0\.1:(\d+)/v1", line)
        assert m, line
        port = int(m.group(1))
        assert port != 0
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        assert r.status_code == 200
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"model": "cascade", "prompt": "Capital of France?"},
                       timeout=10)
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == "Paris"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _TinyWindow:
    """A backend with a 64-token window whose tokenizer counts one token per 4 characters."""

    model_id, family, n_ctx = "tiny", "chat", 64

    def prompt_tokens(self, prompt):
        return sum(len(m["content"]) for m in prompt.messages) // 4 if prompt.messages else len(prompt.text) // 4

    def generate(self, prompt):
        raise AssertionError("a prompt over the window must not be sent")

    def close(self):
        pass


def test_a_question_longer_than_the_window_is_a_400_not_a_failing_tier():
    b = _TinyWindow()
    cascade = Cascade([Tier("slm", b), Tier("llm", b)], [get_router("seed-v1")])
    with BackgroundServer(create_app(cascade)) as srv:
        r = httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                       json={"messages": [{"role": "user", "content": "Why " + "really " * 200 + "?"}]})
        metrics = httpx.get(srv.url + "/metrics", timeout=10).text
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    # OpenAI's wording, which clients such as LiteLLM recognise as a context-window error
    assert err["message"].startswith("This model's maximum context length is 64 tokens. However, your messages resulted in")
    assert "tier slm" in err["message"]
    assert 'cascade_tier_calls_total{outcome="error",tier="slm"} 0.0' in metrics
