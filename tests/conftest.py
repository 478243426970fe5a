"""Shared fixtures: the two embedded models, each loaded once per test session.

``slm`` (SmolLM2-135M-Instruct, chat) and ``llm`` (Gemma 3 270M base) are real in-process
llama.cpp backends with ``threads=2``. They are shared by every test module, so a test must not
close them and must not rely on what the prompt cache holds when it starts. Tests that use them
are marked ``slow`` automatically (deselect with ``-m "not slow"``).

Loading fails loudly (no skip) when an embedded model is missing: the project's setup installs
both, and a silently skipped model test would hide a broken install.
"""

from __future__ import annotations

import socket
import threading

import pytest

from cascade_router.models.llamacpp import LlamaCppBackend
from cascade_router.models.registry import load_model

MODEL_FIXTURES = ("slm", "llm", "shared_models")


def _load(spec: str) -> LlamaCppBackend:
    backend = load_model(spec, threads=2)
    assert isinstance(backend, LlamaCppBackend)
    return backend


@pytest.fixture(scope="session")
def slm() -> LlamaCppBackend:
    """The embedded SLM, ``smollm2-135m`` (chat family), threads=2."""
    backend = _load("smollm2-135m")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def llm() -> LlamaCppBackend:
    """The embedded LLM, ``gemma3-270m`` (base family, few-shot prompts), threads=2."""
    backend = _load("gemma3-270m")
    yield backend
    backend.close()


class SharedModel:
    """A session model handed to the CLI; the command's close() must not close the fixture."""

    def __init__(self, backend) -> None:
        self._b = backend

    def __getattr__(self, name):
        return getattr(self._b, name)

    def close(self) -> None:
        pass


@pytest.fixture
def shared_models(monkeypatch, slm, llm):
    """Make the CLI's model loading (``cascade_router.config.load_model``) return the session's
    already-loaded embedded models; other specs (a ``MODEL@URL`` endpoint) load for real.
    Returns the list of ``(spec, kwargs)`` calls."""
    import cascade_router.config as config_mod

    calls = []
    by_spec = {"smollm2-135m": slm, "gemma3-270m": llm}

    def load(spec, **kw):
        calls.append((spec, kw))
        return SharedModel(by_spec[spec]) if spec in by_spec else load_model(spec, **kw)

    monkeypatch.setattr(config_mod, "load_model", load)
    return calls


@pytest.fixture(scope="session")
def emb():
    """The embedded MiniLM embedder (about a second to load), shared by every test module; a test
    must not close it."""
    from cascade_router.embeddings import load_embedder

    e = load_embedder("minilm", threads=2)
    yield e
    e.close()


@pytest.fixture
def metric_samples():
    """Prometheus text -> ``{(sample name, sorted label items): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    def parse(text: str) -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}

    return parse


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in MODEL_FIXTURES):
            item.add_marker(pytest.mark.slow)


# --- a stub OpenAI-compatible endpoint -------------------------------------------------------------


class StubOpenAI:
    """A tiny local OpenAI-compatible HTTP server (127.0.0.1, free port) for tests.

    ``url`` is the base URL (ending in ``/v1``). Replies come from ``queue`` (a list of
    ``(status, json_body_or_raw_str)``, consumed first), else from :meth:`default_reply`: a
    completion whose text is ``self.text`` and which carries no logprobs. Every request is
    recorded in ``requests`` as ``(path, headers_dict, json_body)``.
    """

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        self.text = "Paris"
        self.queue: list[tuple[int, object]] = []
        self.requests: list[tuple[str, dict, dict]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, reply = stub.queue.pop(0) if stub.queue else (200, stub.default_reply(self.path, body))
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def default_reply(self, path: str, body: dict) -> dict:
        chat = path.endswith("/chat/completions")
        choice = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": self.text}
        else:
            choice["text"] = self.text
        n = len(self.text.split())
        return {
            "id": "stub", "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model", "stub"), "choices": [choice],
            "usage": {"prompt_tokens": 50, "completion_tokens": n, "total_tokens": 50 + n},
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def openai_stub():
    """A fresh :class:`StubOpenAI` per test (replies without logprobs unless queued otherwise)."""
    stub = StubOpenAI()
    yield stub
    stub.close()


@pytest.fixture
def hung_url():
    """An endpoint that accepts connections and never replies."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    stop.set()
    th.join(2)
    for c in conns:
        c.close()
    srv.close()
