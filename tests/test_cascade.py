"""The cascade end to end: real embedded models, passage truncation, OpenAI-compatible tiers,
tiers without logprobs, failures; routing logic on stub tiers."""

import json
import logging
import math

import numpy as np
import pytest

from cascade_router.cascade import CONTEXT_MARGIN, SPECIAL_TOKEN_SLACK, Cascade, ask_model
from cascade_router.models.base import Generation, ModelError
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.models.registry import load_model
from cascade_router.routers import RandomRouter, get_router
from cascade_router.routers.base import decide
from cascade_router.signals import SIGNALS, compute_signals
from cascade_router.tiers import Tier, TierPrice

PASSAGE = "Paris is the capital and largest city of France."
QUESTION = "What is the capital of France?"
FILLER = "The city has many old buildings, wide avenues and a long history of trade and art. "
SMALL_CTX = 512


def seed_v1_rule(s):
    """seed-v1 by hand: escalate iff length_words > 8 or mean_entropy > 1.5 or mean_logprob < -0.6
    (a nan comparison is False, so a nan signal never fires)."""
    return s["length_words"] > 8 or s["mean_entropy"] > 1.5 or s["mean_logprob"] < -0.6


def pair(slm, llm, router, slm_price=None, llm_price=None, **kw):
    """The two-tier cascade ``slm`` -> gate ``router`` -> ``llm`` (backends not owned: never close)."""
    return Cascade([Tier("slm", slm, slm_price or TierPrice()), Tier("llm", llm, llm_price or TierPrice())],
                   [router], **kw)


def check_consistent(res, context=PASSAGE):
    """Invariants of every CascadeResult (``context``: the passage the question was asked with)."""
    assert res.runs, "some tier ran"
    for run in res.runs:
        assert set(run.signals) == set(SIGNALS)
        assert run.signals == pytest.approx(compute_signals(run.generation, run.answer, context), nan_ok=True)
    # one decision per run (the last run may have none), standing after that run's tier, in order
    assert len(res.decisions) in (len(res.runs) - 1, len(res.runs))
    assert [d.after for d in res.decisions] == [r.tier for r in res.runs][: len(res.decisions)]
    for d in res.decisions:
        assert (d.outcome != "accept") == decide(d.score, d.threshold)
    assert res.escalated == any(d.outcome != "accept" for d in res.decisions)
    if res.failures:  # the time lost on a failed tier counts too
        assert res.latency_s >= sum(r.latency_s for r in res.runs)
    else:
        assert res.latency_s == pytest.approx(sum(r.latency_s for r in res.runs))
    assert res.cost_usd == pytest.approx(sum(r.cost_usd for r in res.runs))
    assert res.total_tokens == sum(r.generation.prompt_tokens + r.generation.completion_tokens for r in res.runs)
    json.dumps(res.to_dict(), allow_nan=False)
    if res.route == "abstain":
        assert res.answer == "" and res.decisions[-1].outcome == "abstain"
    else:
        assert res.route == res.runs[-1].tier and res.answer == res.runs[-1].answer


# --- the real embedded cascade ------------------------------------------------------------------


def test_seed_v1_cascade_on_real_models(slm, llm):
    res = pair(slm, llm, get_router("seed-v1")).answer(QUESTION, PASSAGE)
    check_consistent(res)
    signals = res.run("slm").signals
    assert res.escalated == seed_v1_rule(signals)
    assert res.route == ("llm" if res.escalated else "slm")
    assert res.answer == "Paris"
    (d,) = res.decisions
    assert d.after == "slm" and d.router == "threshold" and d.threshold == 0.0
    assert [r.signal for r in d.reasons] == ["length_words", "mean_entropy", "mean_logprob"]
    assert not math.isnan(signals["mean_logprob"]) and not math.isnan(signals["mean_entropy"])


def test_always_llm_on_real_models_with_prices(slm, llm):
    sp, lp = TierPrice(prompt_per_mtok=1.0, completion_per_mtok=2.0), TierPrice(per_call=0.01)
    res = pair(slm, llm, get_router("always-llm"), sp, lp).answer(QUESTION, PASSAGE)
    check_consistent(res)
    assert res.escalated and res.route == "llm" and res.answer == "Paris" == res.run("llm").answer
    assert [d.outcome for d in res.decisions] == ["escalate"] and res.decisions[0].score == math.inf
    s, g = res.run("slm").generation, res.run("llm").generation
    assert g.model == "gemma3-270m" and s.model == "smollm2-135m"
    assert res.run("llm").model == "gemma3-270m" and res.run("slm").model == "smollm2-135m"
    assert g.logprobs is not None
    expected = (s.prompt_tokens * 1.0 + s.completion_tokens * 2.0) / 1e6 + 0.01
    assert res.cost_usd == pytest.approx(expected)
    assert res.run("llm").cost_usd == pytest.approx(0.01)
    assert res.total_tokens == sum(x.prompt_tokens + x.completion_tokens for x in (s, g))


def test_always_slm_and_start(slm, llm):
    c = pair(slm, llm, get_router("always-slm"))
    res = c.answer(QUESTION, PASSAGE)
    check_consistent(res)
    assert not res.escalated and res.route == "slm" and res.run("llm") is None
    assert [r.tier for r in res.runs] == ["slm"] and [d.outcome for d in res.decisions] == ["accept"]
    started = c.answer(QUESTION, PASSAGE, start="llm")
    check_consistent(started)
    assert started.route == "llm" and started.answer == "Paris" and started.start == "llm"
    assert started.decisions == [] and [r.tier for r in started.runs] == ["llm"] and started.run("slm") is None
    assert not started.escalated
    # the slm alone (a one-tier cascade) answers even where the gate would always escalate
    alone = Cascade([Tier("slm", slm)], []).answer(QUESTION, PASSAGE)
    check_consistent(alone)
    assert alone.route == "slm" and not alone.escalated and alone.decisions == [] and alone.answer == "Paris"


def test_second_question_on_same_passage_uses_prompt_cache(slm, llm):
    c = pair(slm, llm, get_router("always-llm"))
    c.answer("Who designed the Larkspur Bridge?", "The Larkspur Bridge was designed by Clara Voss.")
    first = c.answer(QUESTION, PASSAGE)
    second = c.answer("Which is the largest city of France?", PASSAGE)
    for tier in ("slm", "llm"):
        g1, g2 = first.run(tier).generation, second.run(tier).generation
        assert g2.cached_prompt_tokens > 0
        assert g2.cached_prompt_tokens > g1.cached_prompt_tokens  # the passage was reused too


# --- passage longer than the context window -----------------------------------------------------


@pytest.fixture(scope="module")
def small_slm():
    """The SLM with a 512-token context window."""
    b = load_model("smollm2-135m", threads=2, n_ctx=SMALL_CTX)
    yield b
    b.close()


@pytest.mark.slow
def test_long_passage_is_truncated_with_warning(small_slm, caplog):
    long_passage = PASSAGE + " " + FILLER * 120  # ~2,000 tokens
    assert small_slm.count_tokens(long_passage) > SMALL_CTX
    with caplog.at_level(logging.WARNING, logger="cascade_router.cascade"):
        ta = ask_model(small_slm, QUESTION, long_passage, max_tokens=24)
    g = ta.generation
    assert g.truncated_context is True
    assert g.prompt_tokens + 24 + CONTEXT_MARGIN <= SMALL_CTX
    assert g.prompt_tokens > SMALL_CTX // 2  # cut to fit, not emptied
    assert any("passage truncated" in r.getMessage() and "512-token" in r.getMessage() for r in caplog.records)
    assert ta.answer  # a real answer, not an error


def test_byte_bound_holds_for_both_tokenizers(slm, llm):
    """A raw prompt never has more tokens than UTF-8 bytes + SPECIAL_TOKEN_SLACK (what lets
    ask_model skip the tokenizer), on real prompts including non-ASCII text."""
    from cascade_router.datasets import load_dataset
    from cascade_router.prompts import build_prompt

    cases = [(ex.question, ex.context, task) for name, task in (("squad-v1.1", "squad"), ("hotpotqa", "hotpotqa"))
             for ex in load_dataset(name)[:3]]
    cases.append(("Qu'est-ce que « Ωmega » ?", "Le café coûte 3 € à Zürich; 東京 と 北京 😀.", "squad"))
    for backend in (slm, llm):
        for q, c, task in cases:
            p = build_prompt(q, c, task, backend.family)
            assert backend.prompt_tokens(p) <= len(p.text.encode("utf-8")) + SPECIAL_TOKEN_SLACK


class CountingTier:
    """A stub with a context window that counts prompt_tokens calls (tokens = bytes // 4)."""

    family, model_id = "base", "counting"

    def __init__(self, n_ctx):
        self.n_ctx, self.calls = n_ctx, 0

    def prompt_tokens(self, prompt):
        self.calls += 1
        return len(prompt.text.encode()) // 4

    def generate(self, prompt):
        return Generation(text="Paris", tokens=["Paris"], logprobs=[-0.1], prompt_tokens=self.prompt_tokens(prompt),
                          completion_tokens=1, latency_s=0.0, model=self.model_id)


def test_short_prompts_skip_the_tokenizer():
    tier = CountingTier(n_ctx=4096)
    ta = ask_model(tier, QUESTION, PASSAGE)
    assert tier.calls == 1  # only generate's own count: no context-window check
    assert ta.generation.truncated_context is False
    long_passage = FILLER * 60  # ~5,000 bytes > 4096-token budget by bytes, but ~1,300 "tokens"
    tier = CountingTier(n_ctx=4096)
    ta = ask_model(tier, QUESTION, long_passage)
    assert tier.calls == 2 and ta.generation.truncated_context is False  # checked, fits, not cut
    tier = CountingTier(n_ctx=512)
    ta = ask_model(tier, QUESTION, long_passage)
    assert ta.generation.truncated_context is True and tier.calls >= 3


@pytest.mark.slow
def test_huge_passage_through_the_cascade_never_crashes(small_slm):
    huge = PASSAGE + " " + FILLER * 1500  # ~25,000 tokens, 50x the window
    res = pair(small_slm, small_slm, get_router("always-llm")).answer(QUESTION, huge)
    s, g = res.run("slm").generation, res.run("llm").generation
    assert s.truncated_context and g.truncated_context
    assert s.prompt_tokens <= SMALL_CTX and g.prompt_tokens <= SMALL_CTX
    assert res.route == "llm"
    check_consistent(res, huge)


@pytest.mark.slow
def test_short_passage_is_not_truncated(small_slm):
    assert ask_model(small_slm, QUESTION, PASSAGE).generation.truncated_context is False


@pytest.mark.slow
def test_question_alone_over_the_window_is_a_model_error(small_slm):
    with pytest.raises(ModelError, match="exceeds the context window"):
        ask_model(small_slm, "Why? " * 600, None, task="open")


# --- OpenAI-compatible tiers --------------------------------------------------------------------


def test_openai_compat_llm_tier_against_real_llama_cpp_server(slm, llm):
    remote = OpenAICompatBackend("gemma3-270m", llm.base_url, family="base", api_key_env=None, timeout_s=60, retries=0)
    try:
        res = pair(slm, remote, get_router("always-llm")).answer(QUESTION, PASSAGE)
    finally:
        remote.close()
    check_consistent(res)
    assert res.route == "llm" and res.answer == "Paris"
    g = res.run("llm").generation
    assert g.model == "gemma3-270m" and res.run("llm").model == "gemma3-270m"
    # no gate reads the last tier's signals, so logprobs="auto" did not ask for them
    assert g.logprobs is None and "mean_logprob" in res.run("llm").unavailable
    # with an abstain gate after it, it asks, and llama.cpp's server returns them
    remote = OpenAICompatBackend("gemma3-270m", llm.base_url, family="base", api_key_env=None, timeout_s=60, retries=0)
    try:
        c = Cascade([Tier("slm", slm), Tier("llm", remote)], [get_router("always-llm"), get_router("always-slm")])
        g = c.answer(QUESTION, PASSAGE).run("llm").generation
    finally:
        remote.close()
    assert g.logprobs is not None and len(g.logprobs) == len(g.tokens) >= 1
    assert g.top_logprobs[0][0].token == " Paris"


def test_tier_without_logprobs_still_routes_on_length(openai_stub, llm):
    slm = OpenAICompatBackend("stub-slm", openai_stub.url, family="chat", api_key_env=None, retries=0)
    c = pair(slm, llm, get_router("seed-v1"))

    openai_stub.text = "Paris"
    short = c.answer(QUESTION, PASSAGE)
    run = short.run("slm")
    assert run.generation.logprobs is None and run.generation.top_logprobs is None
    assert run.signals["length_words"] == 1
    assert all(math.isnan(run.signals[n]) for n in ("mean_logprob", "mean_entropy", "first_token_margin"))
    assert not short.escalated and short.route == "slm" and short.answer == "Paris"
    assert "n/a" in str(short.decisions[0].reasons[1])

    openai_stub.text = "The capital of France, as the passage says, is the city of Paris."
    long = c.answer(QUESTION, PASSAGE)
    assert long.run("slm").generation.logprobs is None and long.run("slm").signals["length_words"] == 13
    assert long.escalated and long.route == "llm" and long.answer == "Paris"
    check_consistent(short)
    check_consistent(long)
    # the stub saw the chat prompt with the passage before the question
    assert openai_stub.requests[0][2]["messages"][-1]["content"].startswith(f"Passage:\n{PASSAGE}")


def _closed_port_url():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    s.close()
    return url


def test_unreachable_llm_degrades_or_raises(openai_stub, caplog):
    slm = OpenAICompatBackend("stub-slm", openai_stub.url, family="base", api_key_env=None, retries=0)
    dead = OpenAICompatBackend("dead-llm", _closed_port_url(), family="base", api_key_env=None, timeout_s=0.5, retries=0)
    with caplog.at_level(logging.WARNING, logger="cascade_router.cascade"):
        res = pair(slm, dead, get_router("always-llm")).answer(QUESTION, PASSAGE)
    assert res.escalated and res.degraded and res.route == "slm" and res.answer == "Paris"
    assert [r.tier for r in res.runs] == ["slm"] and [d.outcome for d in res.decisions] == ["escalate"]
    assert [f.tier for f in res.failures] == ["llm"]
    assert "dead-llm" in res.failures[0].error and "unreachable" in res.failures[0].error
    assert res.error.startswith("llm: ") and "dead-llm" in res.error and "unreachable" in res.error
    assert res.to_dict()["degraded"] is True
    assert any("tier llm failed" in r.getMessage() and "last answer obtained" in r.getMessage()
               for r in caplog.records)
    check_consistent(res)
    with pytest.raises(ModelError, match="unreachable") as e:
        pair(slm, dead, get_router("always-llm"), on_error="raise").answer(QUESTION, PASSAGE)
    assert e.value.tier == "llm"


def test_unreachable_slm_raises(llm):
    dead = OpenAICompatBackend("dead-slm", _closed_port_url(), family="base", api_key_env=None, timeout_s=0.5, retries=0)
    with pytest.raises(ModelError, match="dead-slm") as e:
        pair(dead, llm, get_router("seed-v1")).answer(QUESTION, PASSAGE)
    assert e.value.tier == "slm"


# --- routing logic on stub tiers ---------------------------------------------------------------


class StubTier:
    """A backend returning a fixed answer with fixed per-token logprobs (no model)."""

    def __init__(self, text, logprobs=None, family="base", model_id="stub", n_ctx=None):
        self.text, self.lps, self.family, self.model_id, self.n_ctx = text, logprobs, family, model_id, n_ctx
        self.prompts = []
        self.closed = False

    def generate(self, prompt):
        self.prompts.append(prompt)
        toks = self.text.split(" ")
        return Generation(
            text=self.text, tokens=toks if self.lps is not None else [], logprobs=self.lps,
            prompt_tokens=100, completion_tokens=len(toks), latency_s=0.01, model=self.model_id,
        )

    def close(self):
        self.closed = True


@pytest.mark.parametrize(
    "text, lps, escalate",
    [
        ("Clara Voss", [-0.1, -0.2], False),
        ("Clara Voss", [-0.6, -0.6], False),  # mean exactly at -0.6: not escalated
        ("Clara Voss", [-0.6, -0.7], True),  # mean -0.65
        ("one two three four five six seven eight", [-0.1] * 8, False),  # 8 words: at the threshold
        ("one two three four five six seven eight nine", [-0.1] * 9, True),
        ("", [], False),  # empty answer: length 0, logprob signals nan
    ],
)
def test_seed_v1_on_stub_tiers(text, lps, escalate):
    res = pair(StubTier(text, lps), StubTier("LLM", [-0.1]), get_router("seed-v1")).answer("Q?", "P.")
    check_consistent(res, "P.")
    assert res.escalated is escalate
    assert res.decisions[0].outcome == ("escalate" if escalate else "accept")
    assert res.route == ("llm" if escalate else "slm")
    assert res.answer == ("LLM" if escalate else text)


def test_bad_arguments():
    c = pair(StubTier("a"), StubTier("b"), get_router("seed-v1"))
    with pytest.raises(ValueError, match="question is empty"):
        c.answer("  ", "P.")
    with pytest.raises(ValueError, match="unknown tier 'gpu'; tiers: slm, llm"):
        c.answer("Q?", "P.", start="gpu")
    with pytest.raises(ValueError, match="valid tasks"):
        c.answer("Q?", "P.", task="quiz")
    with pytest.raises(ValueError, match="on_error"):
        pair(StubTier("a"), StubTier("b"), get_router("seed-v1"), on_error="retry")
    c.close()
    assert c.tier("slm").backend.closed and c.tier("llm").backend.closed


def test_abstention_only_for_squad_v2():
    slm = StubTier("unanswerable", [-0.1])
    c = pair(slm, StubTier("x"), get_router("always-slm"))
    v2 = c.answer("Q?", "P.", task="squad-v2")
    assert v2.answer == "" and v2.route == "slm"  # the tier itself said "no answer": not the abstain gate
    assert c.answer("Q?", "P.", task="squad").answer == "unanswerable"


def test_to_dict_turns_nan_into_none():
    res = pair(StubTier("Paris", None), StubTier("x"), get_router("seed-v1")).answer("Q?", "P.")
    d = res.to_dict()
    (run,) = d["runs"]
    assert run["tier"] == "slm" and run["model"] == "stub" and run["answer"] == "Paris"
    assert run["signals"]["mean_logprob"] is None and run["signals"]["length_words"] == 1.0
    (dec,) = d["decisions"]
    assert dec["after"] == "slm" and dec["outcome"] == "accept"
    assert {r["signal"]: r["value"] for r in dec["reasons"]}["mean_entropy"] is None
    json.dumps(d, allow_nan=False)  # strict JSON
    assert d["total_tokens"] == 100 + 1
    assert (d["route"], d["answer"], d["degraded"], d["escalated"]) == ("slm", "Paris", False, False)
    assert json.loads(json.dumps(pair(StubTier("a"), StubTier("b"), get_router("always-llm"))
                                 .answer("Q?", "P.").to_dict()))["decisions"][0]["score"] == "inf"


def test_random_router_decision_matches_reported_score():
    c = pair(StubTier("a", [-0.1]), StubTier("b", [-0.1]), RandomRouter(rate=0.5, seed=0))
    results = [c.answer(f"Q{i}?", "P.") for i in range(40)]
    assert all(r.escalated == (r.decisions[0].score > r.decisions[0].threshold) for r in results)
    assert all(r.route == ("llm" if r.escalated else "slm") for r in results)
    # and the escalations follow the router's own seeded stream, one draw per question
    expected = RandomRouter(rate=0.5, seed=0).predict([{}] * 40)
    assert np.array_equal([r.escalated for r in results], expected)
