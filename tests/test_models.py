"""Model backends: the real embedded models, response parsing, the OpenAI-compatible client,
and the registry."""

import math
import socket
import threading
import time

import httpx
import pytest

from cascade_router import signals

from cascade_router.cascade import ask_model
from cascade_router.models.base import Generation, ModelError, Prompt, TokenTop
from cascade_router.models.llamacpp import LlamaCppBackend
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.models.parsing import parse_response
from cascade_router.models.registry import (
    CACHE_ENV,
    EMBEDDED,
    cache_dir,
    load_model,
    parse_spec,
)
from cascade_router.prompts import build_prompt

PASSAGE = "Paris is the capital and largest city of France."
QUESTION = "What is the capital of France?"
OTHER_PASSAGE = (
    "The Larkspur Bridge, finished in 1911, crosses the Tamsen River. It was designed by the "
    "engineer Clara Voss and carried trams until 1958."
)


def _ask(backend, question=QUESTION, context=PASSAGE, family=None):
    return backend.generate(build_prompt(question, context, "squad", family or backend.family))


#: (tier, prompt family) pairs run on the Paris question. Chat prompts end on the model's
#: end-of-turn token; base (few-shot completion) prompts end on the stop string "\n".
CASES = [("slm", "chat"), ("slm", "base"), ("llm", "base")]
CASE_IDS = [f"{t}-{f}" for t, f in CASES]


@pytest.fixture(scope="module")
def paris(slm, llm):
    """One greedy generation per case on the Paris question: {(tier, family): Generation}."""
    backends = {"slm": slm, "llm": llm}
    return {(t, f): _ask(backends[t], family=f) for t, f in CASES}


# --- real embedded models ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_logprob_arrays_are_aligned(paris, case):
    g = paris[case]
    assert g.completion_tokens >= 1
    assert g.logprobs is not None and g.top_logprobs is not None
    assert len(g.tokens) == len(g.logprobs) == len(g.top_logprobs) >= 1
    assert "".join(g.tokens).startswith(g.text)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=i) for c, i in zip(CASES, CASE_IDS)],
)
def test_one_logprob_entry_per_generated_token(paris, case):
    g = paris[case]
    assert g.finish_reason == "stop"
    assert len(g.tokens) == len(g.logprobs) == len(g.top_logprobs) >= 1
    # llama.cpp bills the stop-string token ("\n", base family) but returns no logprob for it
    assert g.completion_tokens - len(g.tokens) == (1 if case[1] == "base" else 0)
    assert signals.length_tokens(g) == len(g.tokens)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_top_k_sorted_and_greedy_token_is_top_1(paris, case):
    g = paris[case]
    for tok, lp, tops in zip(g.tokens, g.logprobs, g.top_logprobs):
        assert 1 <= len(tops) <= 5
        assert all(isinstance(t, TokenTop) for t in tops)
        lps = [t.logprob for t in tops]
        assert lps == sorted(lps, reverse=True)
        assert all(x <= 1e-6 for x in lps) and sum(math.exp(x) for x in lps) <= 1 + 1e-4
        # temperature 0: the chosen token is the most probable one
        assert tops[0].token == tok
        assert tops[0].logprob == pytest.approx(lp, abs=1e-6)


def test_generation_metadata(paris, slm, llm):
    backends = {"slm": slm, "llm": llm}
    for (tier, family), g in paris.items():
        backend = backends[tier]
        assert g.model == backend.model_id
        assert g.finish_reason == "stop"
        # the client-side count used for passage truncation agrees with what llama.cpp evaluated
        assert g.prompt_tokens == backend.prompt_tokens(build_prompt(QUESTION, PASSAGE, "squad", family))
        assert g.latency_s > 0 and g.prompt_ms is not None and g.predicted_ms > 0


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_greedy_is_deterministic(slm, llm, paris, case):
    tier, family = case
    backend = {"slm": slm, "llm": llm}[tier]
    _ask(backend, "Who designed the Larkspur Bridge?", OTHER_PASSAGE, family)  # something else between
    again = _ask(backend, family=family)
    assert again.text == paris[case].text
    assert again.tokens == paris[case].tokens


def test_llm_answers_paris(paris):
    assert paris[("llm", "base")].text.strip() == "Paris"


def test_slm_answers_mention_paris(paris):
    assert "Paris" in paris[("slm", "chat")].text and "Paris" in paris[("slm", "base")].text


@pytest.mark.parametrize("tier", ["slm", "llm"])
def test_prompt_prefix_cache_reused_for_same_passage(slm, llm, tier):
    backend = {"slm": slm, "llm": llm}[tier]
    _ask(backend, "When was the bridge finished?", OTHER_PASSAGE)  # a different passage in the slot
    first = _ask(backend, QUESTION, PASSAGE)
    second = _ask(backend, "Which is the largest city of France?", PASSAGE)
    assert second.cached_prompt_tokens > 0
    # the second question reuses the passage too, not only the shared instructions and examples
    assert second.cached_prompt_tokens > first.cached_prompt_tokens
    assert second.cached_prompt_tokens < second.prompt_tokens


def test_base_url_is_a_live_llama_cpp_server(slm):
    assert slm.base_url.startswith("http://127.0.0.1:")
    assert httpx.get(slm.base_url + "/health", timeout=5).status_code == 200


def test_count_tokens(slm):
    assert slm.count_tokens("Paris") >= 1
    assert slm.count_tokens(PASSAGE * 3) > slm.count_tokens(PASSAGE)


def test_llama_cpp_bad_file_and_family(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a gguf file")
    with pytest.raises(ModelError, match="could not load"):
        LlamaCppBackend(bad, threads=1)
    with pytest.raises(FileNotFoundError):
        LlamaCppBackend(tmp_path / "missing.gguf")
    with pytest.raises(ValueError, match="family"):
        LlamaCppBackend(bad, family="instruct")


# --- the OpenAI-compatible backend against real llama.cpp servers --------------------------------


def test_openai_compat_completions_against_llama_cpp(llm):
    oc = OpenAICompatBackend("gemma3-270m", llm.base_url, family="base", api_key_env=None, retries=0)
    try:
        assert oc.base_url.endswith("/v1")
        g = _ask(oc)
    finally:
        oc.close()
    assert g.text.strip() == "Paris" and g.model == "gemma3-270m"
    assert g.logprobs is not None and len(g.logprobs) == len(g.tokens) == len(g.top_logprobs) >= 1
    assert g.tokens[0] == " Paris" and g.logprobs[0] > -0.5
    assert g.prompt_tokens > 100


def test_openai_compat_chat_against_llama_cpp_matches_in_process(slm, paris):
    oc = OpenAICompatBackend("smollm2-135m", slm.base_url, family="chat", api_key_env=None, retries=0)
    try:
        g = _ask(oc)
    finally:
        oc.close()
    assert g.text == paris[("slm", "chat")].text
    assert g.tokens == paris[("slm", "chat")].tokens
    assert len(g.top_logprobs) == len(g.tokens) and all(1 <= len(t) <= 5 for t in g.top_logprobs)


# --- the OpenAI-compatible backend: failures, retries, request bodies ----------------------------


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_endpoint_raises_model_error():
    oc = OpenAICompatBackend("m", f"http://127.0.0.1:{_closed_port()}", timeout_s=0.5, retries=1, api_key_env=None)
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as e:
        oc.generate(Prompt(text="Q: hi\nA:"))
    elapsed = time.perf_counter() - t0
    msg = str(e.value)
    assert "unreachable after 2 attempts" in msg and "timeout 0.5 s" in msg and "127.0.0.1" in msg
    assert 0.4 <= elapsed < 5  # one back-off wait (0.5 s) between the two attempts


def test_silent_endpoint_times_out_with_model_error():
    # a socket that accepts connections (kernel backlog) but never answers
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        oc = OpenAICompatBackend("m", f"http://127.0.0.1:{srv.getsockname()[1]}", timeout_s=0.3,
                                 retries=1, api_key_env=None)
        t0 = time.perf_counter()
        with pytest.raises(ModelError, match=r"unreachable after 2 attempts \(timeout 0.3 s\).*Timeout"):
            oc.generate(Prompt(messages=[{"role": "user", "content": "hi"}]))
        elapsed = time.perf_counter() - t0
        assert 2 * 0.3 <= elapsed < 5  # two timed-out attempts (plus a 0.5 s back-off)
    finally:
        srv.close()


def test_no_logprobs_from_server(openai_stub):
    openai_stub.text = "Paris"
    oc = OpenAICompatBackend("m", openai_stub.url, family="chat", api_key_env=None)
    g = oc.generate(Prompt(messages=[{"role": "user", "content": "hi"}], stop=["\n"], max_tokens=7))
    assert g.text == "Paris" and g.logprobs is None and g.top_logprobs is None and not g.has_logprobs
    assert g.completion_tokens == 1 and g.prompt_tokens == 50
    path, headers, body = openai_stub.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "m" and body["temperature"] == 0.0 and body["max_tokens"] == 7
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["stop"] == ["\n"]
    assert "authorization" not in headers


def test_completions_request_body(openai_stub):
    oc = OpenAICompatBackend("base-model", openai_stub.url + "/", family="base", api_key_env=None, top_k=3)
    g = oc.generate(Prompt(text="Question: x\nAnswer:"))
    assert g.text == "Paris"
    path, _, body = openai_stub.requests[0]
    assert path == "/v1/completions"
    assert body["prompt"] == "Question: x\nAnswer:" and body["logprobs"] == 3 and "stop" not in body


def test_api_key_comes_from_the_named_variable(openai_stub, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-test-123")
    OpenAICompatBackend("m", openai_stub.url, api_key_env="STUB_KEY").generate(Prompt(text="x"))
    assert openai_stub.requests[-1][1]["authorization"] == "Bearer sk-test-123"
    monkeypatch.setenv("STUB_KEY", "")
    OpenAICompatBackend("m", openai_stub.url, api_key_env="STUB_KEY").generate(Prompt(text="x"))
    assert "authorization" not in openai_stub.requests[-1][1]


def test_retries_on_503_then_succeeds(openai_stub):
    openai_stub.queue = [(503, {"error": {"message": "loading"}})]
    g = OpenAICompatBackend("m", openai_stub.url, retries=1, api_key_env=None).generate(Prompt(text="x"))
    assert g.text == "Paris" and len(openai_stub.requests) == 2


def test_retries_exhausted_on_503(openai_stub):
    openai_stub.queue = [(503, {"error": "busy"})] * 2
    with pytest.raises(ModelError, match="HTTP 503"):
        OpenAICompatBackend("m", openai_stub.url, retries=1, api_key_env=None).generate(Prompt(text="x"))
    assert len(openai_stub.requests) == 2


def test_no_retry_on_400(openai_stub):
    openai_stub.queue = [(400, {"error": {"message": "context too long"}})]
    with pytest.raises(ModelError, match="HTTP 400.*context too long"):
        OpenAICompatBackend("m", openai_stub.url, retries=3, api_key_env=None).generate(Prompt(text="x"))
    assert len(openai_stub.requests) == 1


def test_reply_not_json(openai_stub):
    openai_stub.queue = [(200, "<html>proxy error</html>")]
    with pytest.raises(ModelError, match="not JSON"):
        OpenAICompatBackend("m", openai_stub.url, retries=0, api_key_env=None).generate(Prompt(text="x"))


def test_error_body_with_200(openai_stub):
    openai_stub.queue = [(200, {"error": {"message": "model not found"}})]
    with pytest.raises(ModelError, match="backend error: model not found"):
        OpenAICompatBackend("m", openai_stub.url, retries=0, api_key_env=None).generate(Prompt(text="x"))


def test_openai_compat_rejects_bad_family():
    with pytest.raises(ValueError, match="family"):
        OpenAICompatBackend("m", "http://127.0.0.1:1", family="instruct")


# --- parse_response: both logprob layouts ------------------------------------------------------


def test_parse_content_layout():
    resp = {
        "choices": [{
            "message": {"content": "Clara Voss"},
            "finish_reason": "stop",
            "logprobs": {"content": [
                {"token": "Clara", "logprob": -0.2, "top_logprobs": [
                    {"token": "Clara", "logprob": -0.2}, {"token": "The", "logprob": -2.0}]},
                {"token": " Voss", "logprob": -0.01, "top_logprobs": [{"token": " Voss", "logprob": -0.01}]},
            ]},
        }],
        "usage": {"prompt_tokens": 120, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 100}},
        "timings": {"prompt_ms": 12.5, "predicted_ms": 3.0, "cache_n": 99},
    }
    g = parse_response(resp, chat=True, model="m", latency_s=0.25)
    assert g.text == "Clara Voss" and g.tokens == ["Clara", " Voss"]
    assert g.logprobs == [-0.2, -0.01]
    assert g.top_logprobs == [[TokenTop("Clara", -0.2), TokenTop("The", -2.0)], [TokenTop(" Voss", -0.01)]]
    assert (g.prompt_tokens, g.completion_tokens, g.cached_prompt_tokens) == (120, 2, 100)  # usage wins
    assert (g.prompt_ms, g.predicted_ms, g.latency_s, g.finish_reason) == (12.5, 3.0, 0.25, "stop")


def test_parse_legacy_layout_sorts_top_k():
    resp = {
        "choices": [{
            "text": " Thursday",
            "logprobs": {
                "tokens": [" Thurs", "day"],
                "token_logprobs": [-0.3, None],
                "top_logprobs": [{" Friday": -2.5, " Thurs": -0.3, " Mon": -1.9}, {"day": -0.001}],
            },
        }],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2},
        "timings": {"cache_n": 4},
    }
    g = parse_response(resp, chat=False, model="m", latency_s=0.0)
    assert g.text == " Thursday" and g.tokens == [" Thurs", "day"]
    assert g.logprobs == [-0.3, 0.0]
    assert [t.token for t in g.top_logprobs[0]] == [" Thurs", " Mon", " Friday"]
    assert g.cached_prompt_tokens == 4  # from llama.cpp timings when usage has no details


def test_parse_without_logprobs_or_usage():
    g = parse_response({"choices": [{"text": "Paris"}]}, chat=False, model="m", latency_s=0.0)
    assert g.logprobs is None and g.top_logprobs is None and g.tokens == []
    assert g.completion_tokens == 0 and g.cached_prompt_tokens is None and g.prompt_ms is None
    g = parse_response({"choices": [{"message": {"content": None}, "logprobs": None}]}, chat=True, model="m",
                       latency_s=0.0)
    assert g.text == "" and g.logprobs is None
    g = parse_response({"choices": [{"text": "x", "logprobs": {"content": None}}]}, chat=False, model="m",
                       latency_s=0.0)
    assert g.logprobs is None


def test_parse_content_without_top_logprobs():
    resp = {"choices": [{"text": "a", "logprobs": {"content": [{"token": "a", "logprob": -0.5}]}}]}
    g = parse_response(resp, chat=False, model="m", latency_s=0.0)
    assert g.logprobs == [-0.5] and g.top_logprobs is None and g.completion_tokens == 1


@pytest.mark.parametrize(
    "resp, match",
    [
        ({"error": {"message": "boom"}}, "backend error: boom"),
        ({"error": "plain"}, "backend error: plain"),
        ({"choices": []}, "no choices"),
        ({"object": "list"}, "no choices"),
        (["not", "a", "dict"], "not a JSON object"),
    ],
)
def test_parse_errors(resp, match):
    with pytest.raises(ModelError, match=match):
        parse_response(resp, chat=True, model="m", latency_s=0.0)


# --- records -------------------------------------------------------------------------------------


def test_generation_dict_roundtrip(paris):
    g = paris[("llm", "base")]
    back = Generation.from_dict(g.to_dict())
    assert back == g
    assert Generation.from_dict({"text": "x", "unknown_field": 1}).text == "x"


@pytest.mark.parametrize(
    "d, field",
    [
        ([1, 2], "JSON object"),
        ({"tokens": []}, "'text'"),
        ({"text": 5}, "'text'"),
        ({"text": "a", "logprobs": "abc"}, "'logprobs'"),
        ({"text": "a", "logprobs": ["a", "b"]}, "'logprobs'"),
        ({"text": "a", "tokens": 5}, "'tokens'"),
        ({"text": "a", "tokens": "ab"}, "'tokens'"),
        ({"text": "a", "top_logprobs": [[{"token": "a", "logprob": "zz"}]]}, "'top_logprobs'"),
        ({"text": "a", "prompt_tokens": "many"}, "'prompt_tokens'"),
        ({"text": "a", "completion_tokens": None}, "'completion_tokens'"),
        ({"text": "a", "completion_tokens": True}, "'completion_tokens'"),
        ({"text": "a", "latency_s": "fast"}, "'latency_s'"),
        ({"text": "a", "cached_prompt_tokens": "x"}, "'cached_prompt_tokens'"),
        ({"text": "a", "tokens": ["a"], "logprobs": [-0.1, -0.2]}, "2 logprobs for 1 tokens"),
    ],
)
def test_generation_from_dict_names_the_bad_field(d, field):
    with pytest.raises(ValueError, match=field):
        Generation.from_dict(d)


def test_prompt_needs_exactly_one_form():
    with pytest.raises(ValueError):
        Prompt()
    with pytest.raises(ValueError):
        Prompt(messages=[], text="x")
    assert Prompt(text="x").max_tokens == 32


# --- registry ------------------------------------------------------------------------------------


def test_parse_spec(tmp_path):
    assert parse_spec(" smollm2-135m ") == ("embedded", "smollm2-135m")
    assert parse_spec("gemma3-270m") == ("embedded", "gemma3-270m")
    assert parse_spec("gpt-4o-mini@https://api.openai.com/v1") == ("endpoint", "gpt-4o-mini@https://api.openai.com/v1")
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x")
    assert parse_spec(str(f)) == ("gguf", str(f))
    with pytest.raises(ValueError, match="model file not found"):
        parse_spec(str(tmp_path / "missing.gguf"))


@pytest.mark.parametrize("spec", ["gpt-5", "", "smollm2", "user@host"])
def test_parse_spec_unknown_lists_models(spec):
    with pytest.raises(ValueError) as e:
        parse_spec(spec)
    assert "smollm2-135m" in str(e.value) and "gemma3-270m" in str(e.value) and "MODEL@BASE_URL" in str(e.value)


def test_load_model_endpoint_makes_no_call():
    b = load_model("mini@http://127.0.0.1:9/v1", family="base", timeout_s=1.5, retries=4, top_k=3)
    assert isinstance(b, OpenAICompatBackend)
    assert (b.model_id, b.base_url, b.family, b.timeout_s, b.retries, b.top_k) == (
        "mini", "http://127.0.0.1:9/v1", "base", 1.5, 4, 3)
    b.close()


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "cascade-router"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "cascade-router"


def test_embedded_models_and_cache_dir_for_gemma(monkeypatch, tmp_path):
    assert {m.role for m in EMBEDDED.values()} == {"slm", "llm"}
    assert {m.family for m in EMBEDDED.values()} <= {"chat", "base"}
    assert EMBEDDED["smollm2-135m"].ready()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    # Gemma's file lives in the cache directory: an empty one means "not built yet", and asking
    # for the path without preparing builds nothing
    path = EMBEDDED["gemma3-270m"].path(prepare=False)
    assert path.parent == tmp_path / "models"
    assert not EMBEDDED["gemma3-270m"].ready() and not path.exists()


def test_ask_model_with_thread_shared_backend(slm):
    # calls are serialised by the backend's lock: two threads get the same greedy answer
    out = []
    ts = [threading.Thread(target=lambda: out.append(ask_model(slm, QUESTION, PASSAGE).answer)) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 2 and out[0] == out[1]
