"""`cascade-router serve` over an N-tier cascade: three real tiers, called with the official `openai` client.

Tiers: ``small`` = the embedded SmolLM2 (session fixture ``slm``), ``medium`` = the embedded Gemma
(fixture ``llm``), ``large`` = the same Gemma behind llama.cpp's own OpenAI-compatible HTTP
server (:class:`OpenAICompatBackend` on ``llm.base_url``). ``medium`` and ``large`` share the
model id ``gemma3-270m``, so ``/v1/models`` lists them by tier name. Routes are forced with the
``always-llm`` (always escalates) and ``always-slm`` (always accepts) routers; a router as the
last gate is the abstain gate. The session fixtures are never closed here.
"""

from __future__ import annotations

import socket

import httpx
import openai
import pytest

from cascade_router.cascade import Cascade
from cascade_router.config import DEFAULT_PRICES
from cascade_router.models.base import ModelError
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.routers import get_router
from cascade_router.server import BackgroundServer, ServerSettings, create_app
from cascade_router.tiers import Tier

PASSAGE = "Hamlet is a tragedy written by William Shakespeare around 1600."
QUESTION = "Who wrote Hamlet?"
MSGS = [{"role": "user", "content": f"Passage: {PASSAGE}\nQuestion: {QUESTION}"}]
SLM_ID, LLM_ID = "smollm2-135m", "gemma3-270m"
NAMES = ["small", "medium", "large"]


def _escalate():
    return get_router("always-llm")


def _accept():
    return get_router("always-slm")


@pytest.fixture(scope="module")
def remote(llm):
    """Gemma behind llama.cpp's own OpenAI-compatible HTTP server (the ``llm`` fixture's)."""
    backend = OpenAICompatBackend(LLM_ID, llm.base_url, family="base", api_key_env=None, retries=0)
    yield backend
    backend.close()  # closes only this HTTP client, not the shared model


def _tiers(slm, llm, remote, large=None) -> list[Tier]:
    return [Tier("small", slm, DEFAULT_PRICES[SLM_ID]), Tier("medium", llm, DEFAULT_PRICES[LLM_ID]),
            Tier("large", large if large is not None else remote, DEFAULT_PRICES[LLM_ID])]


def _serve(cascade: Cascade, **settings) -> BackgroundServer:
    return BackgroundServer(create_app(cascade, ServerSettings(**settings)))


def _client(srv: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)




def _metric(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def to_large(slm, llm, remote):
    """Every gate escalates: the answer comes from ``large``."""
    with _serve(Cascade(_tiers(slm, llm, remote), [_escalate(), _escalate()], max_tokens=24,
                        gate_labels=["always-llm", "always-llm"])) as srv:
        yield srv


@pytest.fixture(scope="module")
def to_medium(slm, llm, remote):
    """small escalates, medium accepts."""
    with _serve(Cascade(_tiers(slm, llm, remote), [_escalate(), _accept()], max_tokens=24)) as srv:
        yield srv


def test_three_tiers_route_to_the_last(to_large):
    raw = _client(to_large).chat.completions.with_raw_response.create(model="cascade", messages=MSGS)
    resp = raw.parse()
    ext = resp.model_extra["cascade"]
    assert raw.headers["x-cascade-route"] == "large" == ext["route"] and "x-cascade-degraded" not in raw.headers
    assert resp.model == LLM_ID and "Shakespeare" in resp.choices[0].message.content
    assert ext["start"] == "small" and ext["escalated"] is True and ext["degraded"] is False
    assert [t["name"] for t in ext["tiers"]] == NAMES
    assert [t["model"] for t in ext["tiers"]] == [SLM_ID, LLM_ID, LLM_ID]
    assert all(t["prompt_tokens"] > 0 and t["latency_s"] > 0 and t["cost_usd"] > 0 for t in ext["tiers"])
    assert ext["tiers"][-1]["answer"] == resp.choices[0].message.content
    assert [(g["after"], g["router"], g["outcome"]) for g in ext["gates"]] == [
        ("small", "always-llm", "escalate"), ("medium", "always-llm", "escalate")]
    assert all(g["score"] == "inf" for g in ext["gates"])  # json-safe +inf
    assert resp.usage.prompt_tokens == sum(t["prompt_tokens"] for t in ext["tiers"])
    assert resp.usage.completion_tokens == sum(t["completion_tokens"] for t in ext["tiers"])
    assert ext["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in ext["tiers"]))


def test_three_tiers_stream(to_large):
    with _client(to_large).completions.with_streaming_response.create(
            model="cascade", prompt=MSGS[0]["content"], stream=True, stream_options={"include_usage": True}) as raw:
        assert raw.headers["x-cascade-route"] == "large"
        chunks = list(raw.parse())
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1
    ext = finish[0].model_extra["cascade"]
    assert [t["name"] for t in ext["tiers"]] == NAMES and len(ext["gates"]) == 2
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ext["tiers"][-1]["answer"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == sum(
        t["prompt_tokens"] + t["completion_tokens"] for t in ext["tiers"])
    assert all(c.model == LLM_ID for c in chunks)


def test_middle_tier_accepts_and_named_starts(to_medium, metric_samples):
    c = _client(to_medium)
    raw = c.chat.completions.with_raw_response.create(model="cascade", messages=MSGS)
    resp, ext = raw.parse(), raw.parse().model_extra["cascade"]
    assert raw.headers["x-cascade-route"] == "medium" and resp.model == LLM_ID and ext["route"] == "medium"
    assert [t["name"] for t in ext["tiers"]] == ["small", "medium"]
    assert [(g["after"], g["outcome"]) for g in ext["gates"]] == [("small", "escalate"), ("medium", "accept")]

    # a tier by name, by model id (the first tier with it) or by alias starts there; earlier gates are skipped
    for model, start, route in (("medium", "medium", "medium"), (LLM_ID, "medium", "medium"),
                                ("large", "large", "large"), ("llm", "large", "large"),
                                ("small", "small", "medium"), (SLM_ID, "small", "medium"), ("slm", "small", "medium")):
        raw = c.chat.completions.with_raw_response.create(model=model, messages=MSGS)
        ext = raw.parse().model_extra["cascade"]
        assert (ext["start"], ext["route"], raw.headers["x-cascade-route"]) == (start, route, route), model
        assert ext["tiers"][0]["name"] == start and all(g["after"] != "small" for g in ext["gates"]) == (start != "small")
    raw = c.chat.completions.with_raw_response.create(model="medium", messages=MSGS)
    ext = raw.parse().model_extra["cascade"]
    assert [t["name"] for t in ext["tiers"]] == ["medium"] and [g["after"] for g in ext["gates"]] == ["medium"]
    assert ext["escalated"] is False and raw.parse().usage.total_tokens == (
        ext["tiers"][0]["prompt_tokens"] + ext["tiers"][0]["completion_tokens"])
    raw = c.chat.completions.with_raw_response.create(model="large", messages=MSGS)
    ext = raw.parse().model_extra["cascade"]
    assert [t["name"] for t in ext["tiers"]] == ["large"] and ext["gates"] == []  # no gate after the last tier

    s = metric_samples(httpx.get(to_medium.url + "/metrics").text)
    assert _metric(s, "cascade_answers_total", route="medium", mode="routed") == 1
    assert _metric(s, "cascade_answers_total", route="medium", mode="started") == 6
    assert _metric(s, "cascade_answers_total", route="large", mode="started") == 3
    assert _metric(s, "cascade_escalations_total", tier="small") == 4
    assert _metric(s, "cascade_escalations_total", tier="medium") == 0
    assert _metric(s, "cascade_tier_calls_total", tier="small", outcome="ok") == 4
    assert _metric(s, "cascade_tier_calls_total", tier="medium", outcome="ok") == 7
    assert _metric(s, "cascade_tier_calls_total", tier="large", outcome="ok") == 3
    assert _metric(s, "cascade_tier_tokens_total", tier="large", kind="prompt") > 0
    assert _metric(s, "cascade_tier_latency_seconds_count", tier="medium") == 7
    assert _metric(s, "cascade_abstentions_total") == 0 and _metric(s, "cascade_degraded_total") == 0
    assert _metric(s, "cascade_cost_usd_total") > 0
    tiers_seen = {dict(lab)["tier"] for (_, lab) in s if "tier" in dict(lab)}
    assert tiers_seen == set(NAMES)  # labelled by tier names, never model ids


def test_models_list_and_retrieve(to_medium):
    c = _client(to_medium)
    data = c.models.list().data
    assert [m.id for m in data] == ["cascade", SLM_ID, "medium", "large"]  # gemma3-270m is not unique
    assert [m.model_extra["cascade"] for m in data] == [
        {"tier": "cascade", "aliases": []}, {"tier": "small", "aliases": ["small", "slm"]},
        {"tier": "medium", "aliases": ["medium"]}, {"tier": "large", "aliases": ["large", "llm"]}]
    for m in data:
        got = c.models.retrieve(m.id)
        assert got.id == m.id and got.object == "model" and got.model_extra["cascade"] == m.model_extra["cascade"]
    assert c.models.retrieve(LLM_ID).id == "medium"  # the first tier with that model id
    assert c.models.retrieve("llm").id == "large"
    with pytest.raises(openai.NotFoundError) as ei:
        c.models.retrieve("gpt-4o")
    assert ei.value.status_code == 404
    assert ei.value.body == {"message": ei.value.body["message"], "type": "invalid_request_error",
                             "param": "model", "code": "model_not_found"}
    assert "gpt-4o" in ei.value.body["message"]
    h = httpx.get(to_medium.url + "/health").json()
    assert h["tiers"] == [{"name": "small", "model": SLM_ID, "breaker": None}, {"name": "medium", "model": LLM_ID, "breaker": None},
                          {"name": "large", "model": LLM_ID, "breaker": None}]
    assert h["models"] == {"cascade": "cascade", "small": SLM_ID, "medium": LLM_ID, "large": LLM_ID}
    assert h["status"] == "ok" and h["on_llm_error"] == "degrade"


class _Renamed:
    """A session model under another model id (never closes the fixture)."""

    def __init__(self, backend, model_id: str) -> None:
        self._b, self.model_id = backend, model_id

    def __getattr__(self, name):
        return getattr(self._b, name)


def test_model_ids_with_slash_and_at(slm, llm):
    """Model ids may hold '/' and '@' (GET /v1/models/{model_id:path}); tier names may not."""
    tiers = [Tier("small", _Renamed(slm, "acme/small@v1")), Tier("big", llm)]
    with _serve(Cascade(tiers, [_accept()])) as srv:
        c = _client(srv)
        assert [m.id for m in c.models.list().data] == ["cascade", "acme/small@v1", LLM_ID]
        assert c.models.retrieve("acme/small@v1").id == "acme/small@v1"
        assert httpx.get(srv.url + "/v1/models/acme/small@v1").json()["cascade"]["tier"] == "small"
        raw = c.chat.completions.with_raw_response.create(model="acme/small@v1", messages=MSGS)
        assert raw.headers["x-cascade-route"] == "small" and raw.parse().model == "acme/small@v1"
    with pytest.raises(ValueError, match="tier name 'acme/small@v1'"):
        Cascade([Tier("acme/small@v1", slm), Tier("big", llm)], [_accept()])


def test_abstain_gate(slm, llm, remote, metric_samples):
    """A router as the last gate abstains: route and header ``abstain``, empty content."""
    cascade = Cascade(_tiers(slm, llm, remote), [_escalate(), _escalate(), _escalate()], max_tokens=24)
    with _serve(cascade) as srv:
        c = _client(srv)
        raw = c.chat.completions.with_raw_response.create(model="cascade", messages=MSGS)
        resp = raw.parse()
        ext = resp.model_extra["cascade"]
        assert raw.headers["x-cascade-route"] == "abstain" == ext["route"] and resp.model == "abstain"
        assert resp.choices[0].message.content == "" and resp.choices[0].finish_reason == "stop"
        assert [t["name"] for t in ext["tiers"]] == NAMES
        assert [(g["after"], g["outcome"]) for g in ext["gates"]] == [
            ("small", "escalate"), ("medium", "escalate"), ("large", "abstain")]
        assert resp.usage.total_tokens == sum(t["prompt_tokens"] + t["completion_tokens"] for t in ext["tiers"]) > 0
        with c.chat.completions.with_streaming_response.create(model="large", messages=MSGS, stream=True) as raw:
            assert raw.headers["x-cascade-route"] == "abstain"
            chunks = list(raw.parse())
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == ""
        assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model == "abstain"
        assert [g["after"] for g in chunks[-1].model_extra["cascade"]["gates"]] == ["large"]
        s = metric_samples(httpx.get(srv.url + "/metrics").text)
        assert _metric(s, "cascade_abstentions_total") == 2
        assert _metric(s, "cascade_answers_total", route="abstain", mode="routed") == 1
        assert _metric(s, "cascade_answers_total", route="abstain", mode="started") == 1
        assert _metric(s, "cascade_escalations_total", tier="small") == 1
        assert _metric(s, "cascade_escalations_total", tier="medium") == 1


class _Down:
    """A backend that is down: ``generate`` raises ModelError."""

    model_id = "down-model"
    family = "chat"
    n_ctx = None

    def generate(self, prompt):
        raise ModelError("down-model: connection refused")

    def prompt_tokens(self, prompt):
        return None

    def close(self) -> None:
        pass


def test_first_tier_down_names_it(slm, llm, remote, metric_samples):
    """The first tier fails: 503 naming that tier (from ModelError.tier), counted by tier name."""
    dead = OpenAICompatBackend("dead-model", f"http://127.0.0.1:{_closed_port()}/v1", family="chat",
                               api_key_env=None, retries=0, timeout_s=0.5)
    try:
        for first, name in ((_Down(), "small"), (dead, "tiny")):
            tiers = [Tier(name, first), Tier("medium", llm), Tier("large", remote)]
            with _serve(Cascade(tiers, [_escalate(), _escalate()])) as srv:
                c = _client(srv)
                with pytest.raises(openai.InternalServerError) as ei:
                    c.chat.completions.create(model="cascade", messages=MSGS)
                body = ei.value.body
                assert ei.value.status_code == 503 and body["code"] == "tier_unavailable"
                assert body["type"] == "server_error" and body["message"].startswith(f"model tier {name} unavailable: ")
                # starting past the dead tier answers
                ok = c.chat.completions.with_raw_response.create(model="large", messages=MSGS)
                assert ok.headers["x-cascade-route"] == "large"
                s = metric_samples(httpx.get(srv.url + "/metrics").text)
                assert _metric(s, "cascade_tier_calls_total", tier=name, outcome="error") == 1
                assert _metric(s, "cascade_tier_calls_total", tier="large", outcome="ok") == 1
                assert _metric(s, "cascade_requests_total", endpoint="/v1/chat/completions", status="503") == 1
    finally:
        dead.close()


def test_last_tier_down_degrades(slm, llm, metric_samples):
    """The last tier fails: the answer of the tier before it, marked degraded; the failure is counted."""
    dead = OpenAICompatBackend("dead-model", f"http://127.0.0.1:{_closed_port()}/v1", family="base",
                               api_key_env=None, retries=0, timeout_s=0.5)
    try:
        cascade = Cascade(_tiers(slm, llm, None, large=dead), [_escalate(), _escalate()], max_tokens=24)
        with _serve(cascade) as srv:
            raw = _client(srv).chat.completions.with_raw_response.create(model="cascade", messages=MSGS)
            resp = raw.parse()
            ext = resp.model_extra["cascade"]
            assert raw.headers["x-cascade-route"] == "medium" and raw.headers["x-cascade-degraded"] == "true"
            assert resp.model == LLM_ID and ext["degraded"] is True and ext["route"] == "medium"
            assert [t["name"] for t in ext["tiers"]] == ["small", "medium"]
            assert [f["tier"] for f in ext["failures"]] == ["large"] and ext["error"].startswith("large: ")
            assert resp.choices[0].message.content == ext["tiers"][-1]["answer"]
            s = metric_samples(httpx.get(srv.url + "/metrics").text)
            assert _metric(s, "cascade_tier_calls_total", tier="large", outcome="error") == 1
            assert _metric(s, "cascade_tier_calls_total", tier="large", outcome="ok") == 0
            assert _metric(s, "cascade_degraded_total") == 1
            assert _metric(s, "cascade_answers_total", route="medium", mode="routed") == 1
    finally:
        dead.close()
