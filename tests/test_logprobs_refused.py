"""Tiers whose server refuses the ``logprobs`` parameter (as some hosted APIs do: HTTP 400
"logprobs is not supported"), as the first and as the last tier (issue 11, item 1)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from click.testing import CliRunner

from cascade_router.cascade import Cascade
from cascade_router.cli import main
from cascade_router.models.base import ModelError, Prompt
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.routers import get_router
from cascade_router.tiers import Tier

PASSAGE = "Paris is the capital and largest city of France."


class NoLogprobsServer:
    """An OpenAI-compatible server on loopback that answers 400 to any request carrying
    ``logprobs`` or ``top_logprobs``, and ``text`` otherwise; counts both kinds."""

    def __init__(self, text: str = "Paris") -> None:
        self.text, self.refused, self.answered = text, 0, 0
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if "logprobs" in body or "top_logprobs" in body:
                    srv.refused += 1
                    status, reply = 400, {"error": {"message": "logprobs is not supported for this model",
                                                    "type": "invalid_request_error", "param": "logprobs"}}
                else:
                    srv.answered += 1
                    chat = self.path.endswith("/chat/completions")
                    choice = {"index": 0, "finish_reason": "stop"}
                    choice.update({"message": {"role": "assistant", "content": srv.text}} if chat else {"text": srv.text})
                    status, reply = 200, {"choices": [choice], "usage": {"prompt_tokens": 40, "completion_tokens": 1}}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}/v1"
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()

    def close(self):
        self._srv.shutdown()
        self._srv.server_close()


@pytest.fixture
def nolp():
    s = NoLogprobsServer()
    yield s
    s.close()


def _backend(url, **kw):
    return OpenAICompatBackend("hosted", url, family="chat", api_key_env=None, retries=0, **kw)


def test_auto_retries_once_without_logprobs_and_remembers(nolp):
    b = _backend(nolp.url)
    g = b.generate(Prompt(messages=[{"role": "user", "content": "Capital of France?"}]))
    assert g.text == "Paris" and g.logprobs is None
    assert (nolp.refused, nolp.answered, b.logprobs_refused) == (1, 1, True)
    b.generate(Prompt(messages=[{"role": "user", "content": "Again?"}]))
    assert (nolp.refused, nolp.answered) == (1, 2)  # not asked again
    b.close()


def test_true_fails_and_false_never_asks(nolp):
    strict = _backend(nolp.url, logprobs=True)
    with pytest.raises(ModelError, match="HTTP 400.*logprobs is not supported"):
        strict.generate(Prompt(text="Q: x\nA:"))
    never = _backend(nolp.url, logprobs=False)
    assert never.generate(Prompt(text="Q: x\nA:")).text == "Paris"
    assert nolp.refused == 1 and nolp.answered == 1
    with pytest.raises(ValueError, match="logprobs must be"):
        _backend(nolp.url, logprobs="sometimes")
    strict.close()
    never.close()


def test_as_last_tier_it_is_never_asked_for_logprobs(slm, nolp):
    """No gate reads the last tier's signals, so 'auto' does not ask: escalations just work."""
    last = _backend(nolp.url)
    c = Cascade([Tier("local", slm), Tier("hosted", last)], [get_router("always-llm")])
    res = c.answer("What is the capital of France?", PASSAGE)
    assert res.route == "hosted" and res.answer == "Paris" and not res.degraded
    assert nolp.refused == 0 and nolp.answered == 1
    last.close()


def test_as_first_tier_the_gate_routes_on_the_signals_that_remain(slm, nolp):
    first = _backend(nolp.url)
    gate = get_router("seed-v1")  # length, entropy, mean logprob: only length remains
    c = Cascade([Tier("hosted", first), Tier("local", slm)], [gate])
    res = c.answer("What is the capital of France?", PASSAGE)
    assert res.route == "hosted" and res.answer == "Paris"
    run = res.runs[0]
    assert set(run.unavailable) >= {"mean_logprob", "mean_entropy", "first_token_margin"}
    assert run.signals["length_words"] == 1.0 and "context_support" not in run.unavailable
    assert res.decisions[0].outcome == "accept"
    assert nolp.refused == 1 and nolp.answered == 1
    first.close()


def test_ask_says_which_signals_were_unavailable(nolp, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[slm]\nmodel = "hosted@{nolp.url}"\napi_key_env = "NO_SUCH_VARIABLE"\nretries = 0\n'
                   f'[llm]\nmodel = "hosted@{nolp.url}"\napi_key_env = "NO_SUCH_VARIABLE"\nretries = 0\n')
    r = CliRunner().invoke(main, ["ask", "--config", str(cfg), "-q", "What is the capital of France?", "-c", PASSAGE])
    assert r.exit_code == 0, r.output
    assert "slm signals unavailable: " in r.stdout and "mean_logprob" in r.stdout and "(no logprobs from this tier)" in r.stdout


def test_logprobs_option_in_config(tmp_path):
    from cascade_router.config import ConfigError, config_from_dict

    cfg = config_from_dict({"slm": {"model": "m@http://127.0.0.1:9/v1", "logprobs": False}})
    assert cfg.first.logprobs is False and cfg.last.logprobs == "auto"
    with pytest.raises(ConfigError, match="logprobs must be true, false or"):
        config_from_dict({"slm": {"model": "m@http://127.0.0.1:9/v1", "logprobs": "yes"}}, source="x.toml")
