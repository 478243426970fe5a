"""Serving at scale (issue 13): streamed generations, per-tier call slots, early escalation,
live streaming of the answering tier, queue wait apart from model time."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from cascade_router.cascade import Cascade, TierBusyError
from cascade_router.config import ConfigError, config_from_dict
from cascade_router.datasets import load_dataset
from cascade_router.early import early_check
from cascade_router.live import HOLD_BACK_CHARS, LiveAnswer, remaining
from cascade_router.models.base import Generation, ModelError, Prompt
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.models.parsing import StreamAssembler
from cascade_router.models.sse import EARLY_STOP
from cascade_router.prompts import build_prompt, clean_chat
from cascade_router.routers import get_router
from cascade_router.routers.logistic import LogisticRouter
from cascade_router.routers.threshold import SignalRouter, ThresholdRouter
from cascade_router.server import BackgroundServer, ServerSettings, create_app
from cascade_router.tiers import CircuitBreaker, Tier, TierQueueTimeout, TierSlots

RESULTS = Path(__file__).resolve().parents[1] / "results"
PASSAGE = "Paris is the capital and largest city of France."


def gen(lps: list[float]) -> Generation:
    return Generation(text=" ".join("w" for _ in lps), tokens=["w"] * len(lps), logprobs=list(lps))


# -- streamed chunks ------------------------------------------------------------------------


def test_stream_assembler_reads_both_layouts_and_trims_the_stop_string():
    a = StreamAssembler(chat=False, model="m", stop_ids=[[198], [198, 7, 8]])
    assert a.add({"choices": [{"index": 0, "text": " Paris", "logprobs": {"content": [
        {"id": 5, "token": " Paris", "bytes": [32, 80, 97, 114, 105, 115], "logprob": -0.5,
         "top_logprobs": [{"token": " Paris", "logprob": -0.5}, {"token": " Lyon", "logprob": -1.5}]}]}}]})
    # llama.cpp streams a held-back token (it may begin a stop string) with empty token and bytes
    assert a.add({"choices": [{"index": 0, "text": "", "logprobs": {"content": [
        {"id": 198, "token": "", "bytes": [], "logprob": -0.1, "top_logprobs": []}]}}]})
    assert a.partial(0.1).tokens == [" Paris"]  # the tail may still be a stop string: not shown yet
    a.add({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 12, "completion_tokens": 2}, "timings": {"cache_n": 10, "predicted_ms": 30.0}})
    g = a.generation(0.25)  # the stop string "\n" (token 198) ended it: left out, as llama.cpp's one-piece reply does
    assert (g.text, g.tokens, g.logprobs, g.finish_reason) == (" Paris", [" Paris"], [-0.5], "stop")
    assert [t.token for t in g.top_logprobs[0]] == [" Paris", " Lyon"]
    assert (g.prompt_tokens, g.completion_tokens, g.cached_prompt_tokens, g.predicted_ms) == (12, 2, 10, 30.0)
    # a held-back token that was not a stop string after all (a newline inside a chat answer) stays
    b = StreamAssembler(chat=False, model="m", stop_ids=[[198, 7, 8]])
    for i, tid in enumerate((5, 198, 9)):
        b.add({"choices": [{"index": 0, "text": "x", "logprobs": {"content": [
            {"id": tid, "token": "", "bytes": [], "logprob": -0.1 * (i + 1)}]}}]})
    b.add({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    assert b.generation(0.1).logprobs == pytest.approx([-0.1, -0.2, -0.3])
    # an endpoint (no token ids of the stop strings): held entries whose own text (named by their
    # top_logprobs) spells a stop string are left out; a held end-of-text token stays
    for last_tok, kept in (("\n", 1), ("<|im_end|>", 2)):
        e = StreamAssembler(chat=False, model="m", held_stops=True, stop_strings=["\n", "\nUser:"])
        e.add({"choices": [{"index": 0, "text": " Paris", "logprobs": {"content": [
            {"id": 5, "token": " Paris", "bytes": [32], "logprob": -0.5, "top_logprobs": [{"id": 5, "token": " Paris", "logprob": -0.5}]}]}}]})
        e.add({"choices": [{"index": 0, "text": "", "logprobs": {"content": [
            {"id": 9, "token": "", "bytes": [], "logprob": -3.0, "top_logprobs": [{"id": 9, "token": last_tok, "logprob": -3.0}]}]},
            "finish_reason": "stop"}]})
        assert len(e.generation(0.1).tokens) == kept, last_tok
    # OpenAI's legacy completions layout, chat deltas
    b = StreamAssembler(chat=False, model="m")
    b.add({"choices": [{"index": 0, "text": "A", "logprobs": {"tokens": ["A"], "token_logprobs": [-0.2],
                                                              "top_logprobs": [{"A": -0.2, "B": -2.0}]}}]})
    assert b.generation(0.1).logprobs == [-0.2]
    with pytest.raises(ModelError, match="malformed usage"):
        b.usage = {"completion_tokens": "x"}
        b.generation(0.1)
    c = StreamAssembler(chat=True, model="m")
    c.add({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    c.add({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    c.add({"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "length"}]})
    g = c.generation(0.1)
    assert (g.text, g.logprobs, g.finish_reason) == ("Hi there", None, "length")
    with pytest.raises(ModelError, match="backend error: boom"):
        c.add({"error": {"message": "boom"}})
    with pytest.raises(ModelError, match="malformed"):
        c.add({"choices": [{"index": 0, "logprobs": {"content": [{"token": "x", "logprob": "high"}]}}]})


def test_streamed_generation_equals_the_one_piece_generation(slm):
    """Same prompt, same cache state: the streamed generation (in-process through llama.cpp's
    HTTP server, and as an endpoint) has the one-piece generation's tokens and logprobs, for QA
    (stop string "\n") and general chat (multi-token stop strings, newlines inside the answer);
    every partial generation is a prefix of it."""
    ep = OpenAICompatBackend("smollm2", slm.base_url, family=slm.family, api_key_env=None)
    chats = ["List five fruits that are red.", "Name three famous painters and one work by each.",
             "Give me three tips for sleeping better."]
    texts = []
    for q in chats:
        p = build_prompt(q, None, "chat", slm.family, max_tokens=96)
        slm.generate(p)
        one = slm.generate(p)
        parts: list = []
        streamed = slm.generate(p, on_token=lambda g: parts.append(g))
        texts.append(one.text)
        one_ep, streamed_ep = ep.generate(p), ep.generate(p, on_token=lambda g: False)  # endpoint: held stop tokens
        assert streamed_ep.tokens == one_ep.tokens and streamed_ep.logprobs == one_ep.logprobs  # and end-of-text kept
        assert streamed.tokens == one.tokens and streamed.logprobs == one.logprobs and streamed.text == one.text
        assert all(g.tokens == one.tokens[:len(g.tokens)] for g in parts)
    assert sum("\n" in t for t in texts) >= 2  # answers with newlines inside (held back, then sent)
    try:
        for ex in load_dataset("squad-v1.1")[:3]:
            p = build_prompt(ex.question, ex.context, "squad", slm.family, max_tokens=16)
            slm.generate(p)  # the prompt cache now holds this prompt
            one = slm.generate(p)
            seen: list[str] = []
            streamed = slm.generate(p, on_token=lambda g: seen.append(g.text))
            endpoint = ep.generate(p, on_token=lambda g: False)
            assert streamed.text == one.text == endpoint.text and streamed.tokens == one.tokens == endpoint.tokens
            assert streamed.logprobs == one.logprobs == endpoint.logprobs
            assert streamed.completion_tokens == one.completion_tokens and streamed.prompt_tokens == one.prompt_tokens
            # one call per token, and one for the stop string's token when it stopped on one
            assert len(seen) == len(one.tokens) + (one.finish_reason == "stop") and seen[-1] == one.text
    finally:
        ep.close()


def test_on_token_stops_the_generation(slm):
    p = Prompt(text="Count: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,", max_tokens=40)
    g = slm.generate(p, on_token=lambda g: len(g.tokens) >= 3)
    assert g.finish_reason == EARLY_STOP and len(g.tokens) == 3 and g.completion_tokens == 3
    assert g.prompt_tokens > 10  # from llama.cpp's timings (usage comes only at the end)


# -- per-tier call slots --------------------------------------------------------------------


def test_tier_slots_bound_and_time_out():
    s = TierSlots(2, queue_timeout_s=0.2)
    with s.hold() as w1, s.hold() as w2:
        assert w1 < 0.05 and w2 < 0.05 and s.busy == 2
        t0 = time.perf_counter()
        with pytest.raises(TierQueueTimeout, match="2 call slot"):
            with s.hold():
                pass
        assert 0.18 < time.perf_counter() - t0 < 1.0
    assert s.busy == 0 and s.waiting == 0
    with pytest.raises(ValueError):
        TierSlots(0)
    with pytest.raises(ValueError):
        TierSlots(1, queue_timeout_s=0)


def test_tier_slot_settings_in_config():
    cfg = config_from_dict({"slm": {"model": "smollm2-135m", "parallel": 3},
                            "llm": {"model": "m@http://127.0.0.1:9/v1", "connect_timeout_s": 1.5, "queue_timeout_s": 7}})
    assert cfg.tiers[0].slots().parallel == 3 and cfg.tiers[0].slots().queue_timeout_s == 120
    b = cfg.tiers[1].open()
    assert cfg.tiers[1].slots(b).parallel == 4 and cfg.tiers[1].slots(b).queue_timeout_s == 7  # an endpoint's default
    assert b._http.timeout.connect == 1.5 and b._http.timeout.read == 30
    b.close()
    for bad in ({"parallel": 0}, {"queue_timeout_s": -1}, {"connect_timeout_s": "fast"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            config_from_dict({"slm": {"model": "smollm2-135m", **bad}}, source="x.toml")


class Slow:
    """A backend that sleeps ``delay`` seconds and answers ``answer`` (``unsure`` to a prompt
    that mentions ``unsure``)."""

    family, n_ctx, model_id = "chat", None, "slow"

    def __init__(self, answer: str, delay: float, unsure: str = "not sure about this one") -> None:
        self.answer, self.delay, self.unsure = answer, delay, unsure

    def generate(self, prompt):
        time.sleep(self.delay)
        text = self.unsure if "unsure" in json.dumps(prompt.messages or prompt.text) else self.answer
        return Generation(text=text, tokens=[text], logprobs=[-0.1], completion_tokens=1, latency_s=self.delay)

    def close(self):
        pass


def test_queue_wait_is_apart_from_model_time_and_a_busy_tier_degrades():
    big = Tier("llm", Slow("Big", 0.3), slots=TierSlots(1, queue_timeout_s=0.45),
               breaker=CircuitBreaker(1, 30))
    c = Cascade([Tier("slm", Slow("small", 0.0)), big], [get_router("always-llm")])
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(c.answer("Q?", PASSAGE))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_route = sorted(r.route for r in out)
    # one slot, 0.3 s per call, 0.45 s queue bound: two calls get the slot, the third degrades
    assert by_route == ["llm", "llm", "slm"]
    waited = sorted(r.run("llm").queue_s for r in out if r.route == "llm")
    assert waited[0] < 0.1 and 0.2 < waited[1] < 0.45
    assert all(abs(r.run("llm").latency_s - 0.3) < 0.05 for r in out if r.route == "llm")
    busy = next(r for r in out if r.route == "slm")
    assert busy.degraded and "busy" in busy.failures[0].error and busy.failures[0].busy
    assert big.breaker.state == "closed"  # saturation is not a failure
    from cascade_router.server.metrics import ServerMetrics

    m = ServerMetrics(lambda: 0, lambda: 0, tiers=["slm", "llm"])
    for r in out:
        m.record_result(r, "routed")
    text = m.render().decode()
    assert 'cascade_tier_busy_total{tier="llm"} 1.0' in text and 'cascade_tier_busy_total{tier="slm"} 0.0' in text
    assert 'cascade_tier_calls_total{outcome="error",tier="llm"} 1.0' in text


def test_first_tier_requests_stay_fast_while_escalations_hang(hung_url):
    """Issue 13's hung-tier check: 6 escalations hang on the last tier (a real HTTP endpoint that
    never replies; 4 s timeout, 2 slots) while requests for the first tier (0.05 s, 4 slots) are
    answered as fast as alone; the escalations degrade within the timeout plus the queue bound,
    then at once while the breaker is open."""
    hung = OpenAICompatBackend("hung", hung_url, family="chat", api_key_env=None, timeout_s=4.0, retries=0)
    tiers = [Tier("slm", Slow("Paris", 0.05), slots=TierSlots(4)), Tier("llm", hung, breaker=CircuitBreaker(2, 60), slots=TierSlots(2, queue_timeout_s=3.0))]
    cascade = Cascade(tiers, [SignalRouter("length_words", 1)])  # "Paris" is accepted, "not sure ..." escalates
    easy = {"messages": [{"role": "user", "content": f"Passage: {PASSAGE}\nQuestion: What is the capital of France?"}]}
    hard = {"messages": [{"role": "user", "content": f"Passage: {PASSAGE}\nQuestion: What is unsure?"}]}
    try:
        with BackgroundServer(create_app(cascade, ServerSettings(max_concurrency=8))) as srv:
            def post(body):
                t0 = time.perf_counter()
                r = httpx.post(srv.url + "/v1/chat/completions", timeout=60, json=body)
                return r, time.perf_counter() - t0

            def busy_llm_slots() -> str:
                text = httpx.get(srv.url + "/metrics").text
                return next(ln.split()[-1] for ln in text.splitlines() if ln.startswith('cascade_tier_busy_slots{tier="llm"}'))

            alone = min(post(easy)[1] for _ in range(2))
            esc: list = []
            threads = [threading.Thread(target=lambda: esc.append(post(hard))) for _ in range(6)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 3.5
            while busy_llm_slots() != "2.0" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert busy_llm_slots() == "2.0"  # both slots of the hung tier are held
            first = [post(easy) for _ in range(3)]
            still = busy_llm_slots()
            for t in threads:
                t.join()
            r_after, after = post(hard)
    finally:
        hung.close()
    for r, dt in first:
        assert r.status_code == 200 and r.headers["x-cascade-route"] == "slm"
        assert dt < alone + 0.5, (dt, alone)  # not behind the hung tier (its timeout is 4 s)
    assert still == "2.0"  # the first-tier requests were answered while the escalations hung
    for r, dt in esc:
        assert r.status_code == 200 and r.headers["x-cascade-degraded"] == "true"
        assert r.json()["choices"][0]["message"]["content"] == "not sure about this one"
        assert dt < 4.0 + 3.0 + 1.0  # timeout + queue bound + the first tier
    assert r_after.headers["x-cascade-degraded"] == "true" and after < 0.5
    assert "circuit open" in r_after.json()["cascade"]["failures"][0]["error"]


# -- early escalation -----------------------------------------------------------------------


def test_early_check_fires_only_when_the_decision_is_certain():
    long = early_check(SignalRouter("length_tokens", 3))
    assert long is not None and not long(gen([-0.1] * 3)) and long(gen([-0.1] * 4))
    low = early_check(SignalRouter("min_logprob", -2.0))
    assert low is not None and not low(gen([-0.1, -1.9])) and low(gen([-0.1, -2.5]))
    assert not low(Generation(text="x", tokens=["x"], logprobs=None))  # no logprobs: never
    # rules that later tokens can undo, and learned gates: never early
    assert early_check(SignalRouter("mean_logprob", -1.0)) is None
    assert early_check(SignalRouter("length_tokens", 3, direction=-1)) is None
    assert early_check(get_router("seed-v1")) is None and early_check(LogisticRouter()) is None
    rules = early_check(ThresholdRouter({"mean_logprob": -0.6, "min_logprob": -2.0}))
    assert rules is not None and rules(gen([-0.1, -2.5])) and not rules(gen([-1.0, -1.0]))


def test_early_decisions_equal_full_decisions_on_the_committed_generations(tmp_path):
    """On all 1,000 stored SmolLM2 generations of the committed SQuAD v1.1 run: whenever a
    prefix of a generation makes the early check fire, the gate on the full generation
    escalates (for gates on both monotone signals at several thresholds)."""
    from cascade_router.evaluation.store import RunStore
    from cascade_router.signals import compute_signals

    shutil.copy(RESULTS / "squad-v1.1-n1000" / "generations.sqlite", tmp_path / "generations.sqlite")
    store = RunStore(tmp_path)
    gens = [r.generation for r in store.rows() if r.tier == "slm" and r.generation is not None]
    store.close()
    assert len(gens) == 1000
    fired = 0
    for router in (SignalRouter("min_logprob", -1.0), SignalRouter("min_logprob", -2.5),
                   SignalRouter("length_tokens", 4), SignalRouter("length_tokens", 10)):
        check = early_check(router)
        for g in gens:
            n = len(g.tokens)
            first = next((k for k in range(1, n + 1) if check(Generation(
                text="".join(g.tokens[:k]), tokens=g.tokens[:k], logprobs=g.logprobs[:k]))), None)
            full = bool(router.predict(compute_signals(g, None, None))[0])
            if first is not None:
                fired += 1
                assert full, (router, g.tokens, first)
    assert fired > 1000  # the check is not vacuous


def test_early_escalation_keeps_every_decision_and_stops_generating(slm, llm):
    exs = load_dataset("squad-v1.1")[40:52]
    gate = SignalRouter("min_logprob", -1.5)
    results = {}
    for early in (False, True):
        c = Cascade([Tier("slm", slm), Tier("llm", llm)], [gate], early_escalation=early)
        results[early] = [c.answer(ex.question, ex.context) for ex in exs]
    full, fast = results[False], results[True]
    assert [r.route for r in full] == [r.route for r in fast]
    assert [r.decisions[0].outcome for r in full] == [r.decisions[0].outcome for r in fast]
    assert [r.answer for r in full if r.route == "slm"] == [r.answer for r in fast if r.route == "slm"]
    stopped = [(a, b) for a, b in zip(full, fast) if b.runs[0].stopped_early]
    assert stopped and all(b.decisions[0].early and b.decisions[0].outcome == "escalate" for _, b in stopped)
    assert all(len(b.runs[0].generation.tokens) <= len(a.runs[0].generation.tokens) for a, b in stopped)
    assert sum(len(a.runs[0].generation.tokens) - len(b.runs[0].generation.tokens) for a, b in stopped) > 0


# -- live streaming -------------------------------------------------------------------------


def test_live_answer_sends_only_a_prefix_no_later_token_changes():
    la = LiveAnswer("chat")
    raw = "Hello there, this is a longer reply that goes on for a while.<|im_end|>ignored"
    sent = ""
    for k in range(1, len(raw) + 1):
        sent += la.feed(raw[:k])
    final = clean_chat(raw)
    assert sent and final.startswith(sent) and len(final) - len(sent) >= HOLD_BACK_CHARS - 8
    assert sent + remaining(sent, final) == final
    assert LiveAnswer("squad").feed("Paris is the capital of France and more words") == ""
    assert remaining("Lyon", "Paris") == ""


def test_an_escalated_stream_shows_its_first_token_before_the_answer_is_complete(slm, llm):
    """A general chat request escalated to the last tier: its text streams while it is
    generated, the pieces add up to the final answer, the header names the tier at once.
    (Gemma 270M base writes poor chat, so the instruct SmolLM2 is the last tier here.)"""
    cascade = Cascade([Tier("first", llm), Tier("last", slm)], [get_router("always-llm")],
                      chat_gate=get_router("always-llm"))
    with BackgroundServer(create_app(cascade)) as srv:
        arrivals, content, last = [], "", None
        t0 = time.perf_counter()
        with httpx.stream("POST", srv.url + "/v1/chat/completions", timeout=120, json={
                "stream": True, "max_tokens": 96, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Explain how a lighthouse works."}]}) as r:
            assert r.status_code == 200 and r.headers["x-cascade-route"] == "last"
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                ev = json.loads(line[6:])
                for ch in ev["choices"]:
                    piece = ch["delta"].get("content")
                    if piece:
                        arrivals.append(time.perf_counter() - t0)
                        content += piece
                if "cascade" in ev:
                    last = ev
        final_llm = last["cascade"]["tiers"][-1]
    assert last["cascade"]["route"] == "last" and content == final_llm["answer"] and len(content) > 200
    assert len(arrivals) > 5
    # the first content came well before the last (the tier decodes ~70 tokens/s)
    assert arrivals[-1] - arrivals[0] > 0.5, arrivals


# -- faults found by the adversarial pass ---------------------------------------------------


class _Endpoint:
    """A loopback OpenAI-compatible endpoint whose streamed replies misbehave (``mode``)."""

    def __init__(self) -> None:
        import http.server
        import socketserver

        outer = self
        self.mode = "ok"

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                chunk = lambda text, **kw: {"choices": [{"index": 0, "text": text, **kw}]}  # noqa: E731
                if outer.mode == "jsonerror200":
                    body = json.dumps({"error": {"message": "quota exceeded"}}).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if outer.mode == "jsonbody":  # ignores stream: one ordinary reply
                    body = json.dumps({"choices": [{"index": 0, "text": " Paris", "finish_reason": "stop"}],
                                       "usage": {"prompt_tokens": 9, "completion_tokens": 1}}).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                events = {"nochoices": [{"id": "x"}, {"id": "y"}],
                          "nodone_end": [chunk(" The"), chunk(" answer"), chunk(" is")],
                          "slow": [chunk(f" w{i}") for i in range(12)],
                          "ok": [chunk(" Paris"), chunk("", finish_reason="stop")]}[outer.mode]
                for ev in events:
                    self.wfile.write(f"data: {json.dumps(ev)}\n\n".encode())
                    self.wfile.flush()
                    if outer.mode == "slow":
                        time.sleep(0.3)
                if outer.mode in ("ok", "nochoices"):
                    self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *a):
                pass

        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/v1"

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def test_a_broken_stream_is_an_error_never_an_answer():
    ep = _Endpoint()
    b = OpenAICompatBackend("fake", ep.url, family="base", api_key_env=None, timeout_s=1.0, retries=0)
    p = Prompt(text="Q: capital of France?\nA:", stop=["\n"], max_tokens=16)
    try:
        ep.mode = "ok"
        assert b.generate(p, on_token=lambda g: False).text == " Paris"
        ep.mode = "jsonbody"  # a server that ignores stream: its one reply is read as such
        g = b.generate(p, on_token=lambda g: False)
        assert (g.text, g.finish_reason, g.prompt_tokens) == (" Paris", "stop", 9)
        for mode, msg in (("jsonerror200", "quota exceeded"), ("nochoices", "carried no answer"),
                          ("nodone_end", "ended before the answer was complete"), ("slow", "deadline")):
            ep.mode = mode
            t0 = time.perf_counter()
            with pytest.raises(ModelError, match=msg):
                b.generate(p, on_token=lambda g: False)
            assert time.perf_counter() - t0 < 3.0, mode  # timeout_s bounds the whole stream
    finally:
        b.close()
        ep.close()


def test_an_early_stopped_answer_is_completed_when_every_later_tier_fails(slm):
    ex = load_dataset("squad-v1.1")[0]
    down = OpenAICompatBackend("down", "http://127.0.0.1:9/v1", family="chat", api_key_env=None, timeout_s=1, retries=0)
    gate = SignalRouter("length_tokens", 1)  # escalates any answer longer than one token
    try:
        full = Cascade([Tier("slm", slm), Tier("llm", down)], [gate], early_escalation=False).answer(ex.question, ex.context)
        early = Cascade([Tier("slm", slm), Tier("llm", down)], [gate]).answer(ex.question, ex.context)
    finally:
        down.close()
    assert full.degraded and early.degraded and len(full.runs[0].generation.tokens) > 2
    assert early.runs[0].stopped_early and early.decisions[0].early
    assert early.answer == full.answer and early.route == "slm"  # the whole answer, generated again
    assert early.run("slm") is early.runs[-1] and not early.runs[-1].stopped_early


def test_on_text_stops_a_final_qa_tier_whose_client_went_away(slm):
    ex = load_dataset("squad-v1.1")[2]
    calls: list[str] = []

    def on_text(tier, delta):
        calls.append(delta)
        return len(calls) >= 2  # the client is gone after two tokens

    res = Cascade([Tier("slm", slm)], []).answer(ex.question, ex.context, max_tokens=24, on_text=on_text)
    assert len(calls) == 2 and all(d == "" for d in calls)  # QA text is held to the end
    assert res.runs[0].generation.finish_reason == EARLY_STOP and len(res.runs[0].generation.tokens) <= 2


def test_null_tier_fields_are_config_errors():
    for key in ("timeout_s", "connect_timeout_s", "retries", "top_k", "n_ctx", "breaker_cooldown_s", "breaker_failures"):
        with pytest.raises(ConfigError, match=f"x.json: .*{key} must not be null"):
            config_from_dict({"tiers": [{"name": "a", "model": "smollm2-135m"},
                                        {"name": "b", "model": "m@http://127.0.0.1:9/v1", key: None}]}, source="x.json")
