"""The per-tier circuit breaker (issue 13, item 2, part): a later tier that hangs is paid for
its timeout a few times, then skipped at once until a probe after the cool-down."""

from __future__ import annotations

import time

import httpx
import pytest

from cascade_router.cascade import Cascade
from cascade_router.config import ConfigError, config_from_dict
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.routers import get_router
from cascade_router.server import BackgroundServer, create_app
from cascade_router.tiers import CircuitBreaker, Tier

PASSAGE = "Paris is the capital and largest city of France."


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_breaker_states_by_hand():
    c = Clock()
    b = CircuitBreaker(failures=2, cooldown_s=10, clock=c)
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow() and b.seconds_left() == 10
    c.t = 9.9
    assert not b.allow()
    c.t = 10.0
    assert b.state == "half-open" and b.allow() and not b.allow()  # one probe at a time
    b.record_failure()  # the probe failed: open again
    assert b.state == "open" and b.seconds_left() == 10
    c.t = 20.0
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow() and b.allow()
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown_s=0)


def test_a_hung_last_tier_is_skipped_once_the_breaker_opens(slm, hung_url):
    hung = OpenAICompatBackend("hung", hung_url, family="chat", api_key_env=None, timeout_s=0.5, retries=0)
    clock = Clock()
    cascade = Cascade([Tier("slm", slm), Tier("llm", hung, breaker=CircuitBreaker(2, 30, clock=clock))],
                      [get_router("always-llm")])
    try:
        with BackgroundServer(create_app(cascade)) as srv:
            times = []
            for _ in range(4):
                r = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={"messages": [
                    {"role": "user", "content": f"Passage: {PASSAGE}\nQuestion: What is the capital of France?"}]})
                ext = r.json()["cascade"]
                times.append(ext["latency_s"] - sum(t["latency_s"] for t in ext["tiers"]))  # spent on the failed tier
                assert r.status_code == 200 and r.headers["x-cascade-degraded"] == "true"
                assert r.json()["choices"][0]["message"]["content"] == "Paris"
            failures = r.json()["cascade"]["failures"]
            health = httpx.get(srv.url + "/health").json()
            metrics = httpx.get(srv.url + "/metrics").text
            # the first two pay the 0.5 s timeout; then the tier is skipped at once
            assert min(times[:2]) >= 0.5 and "circuit open" in failures[0]["error"]
            assert max(times[2:]) < 0.1
            assert [t["breaker"] for t in health["tiers"]] == [None, "open"]  # slm was built without one
            assert 'cascade_tier_breaker_open{tier="llm"} 1.0' in metrics
            # a first tier whose breaker is open is a 503 at once
            clock.t = 31  # cool-down over: the next escalation probes (and fails) again
            r = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={"model": "llm", "messages": [
                {"role": "user", "content": f"Passage: {PASSAGE}\nQuestion: What is the capital of France?"}]})
            assert r.status_code == 503 and "llm" in r.json()["error"]["message"]
            t0 = time.perf_counter()
            r = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={"model": "llm", "messages": [
                {"role": "user", "content": "Passage: x.\nQuestion: y?"}]})
            assert r.status_code == 503 and "circuit open" in r.json()["error"]["message"]
            assert time.perf_counter() - t0 < 0.5
    finally:
        hung.close()


def test_breaker_settings_in_config():
    cfg = config_from_dict({"llm": {"model": "m@http://127.0.0.1:9/v1", "breaker_failures": 5, "breaker_cooldown_s": 60}})
    assert (cfg.last.breaker_failures, cfg.last.breaker_cooldown_s) == (5, 60)
    with pytest.raises(ConfigError, match="breaker_failures must be"):
        config_from_dict({"llm": {"model": "m@http://127.0.0.1:9/v1", "breaker_failures": 0}}, source="x.toml")


def test_fail_mode_503_still_counts_what_the_first_tier_spent(slm, hung_url, metric_samples):
    """With on_error="raise" an escalation whose last tier fails is a 503; /metrics still counts
    the first tier's call, tokens, the escalation and the cost (issue 13, item 5)."""
    from cascade_router.config import DEFAULT_PRICES
    from cascade_router.tiers import TierPrice

    hung = OpenAICompatBackend("hung", hung_url, family="chat", api_key_env=None, timeout_s=0.3, retries=0)
    cascade = Cascade([Tier("slm", slm, DEFAULT_PRICES["smollm2-135m"]), Tier("llm", hung, TierPrice())],
                      [get_router("always-llm")], on_error="raise")
    try:
        with BackgroundServer(create_app(cascade)) as srv:
            r = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={"messages": [
                {"role": "user", "content": f"Passage: {PASSAGE}\nQuestion: What is the capital of France?"}]})
            assert r.status_code == 503 and "model tier llm unavailable" in r.json()["error"]["message"]
            text = httpx.get(srv.url + "/metrics").text
    finally:
        hung.close()
    m = metric_samples(text)
    assert m[("cascade_tier_calls_total", (("outcome", "ok"), ("tier", "slm")))] == 1
    assert m[("cascade_tier_calls_total", (("outcome", "error"), ("tier", "llm")))] == 1
    assert m[("cascade_escalations_total", (("tier", "slm"),))] == 1
    assert m[("cascade_tier_tokens_total", (("kind", "prompt"), ("tier", "slm")))] > 100
    assert m[("cascade_cost_usd_total", ())] > 0
    assert not any(k[0] == "cascade_answers_total" and v > 0 for k, v in m.items())
