"""Embeddings: the embedded all-MiniLM-L6-v2 (int8 ONNX, real model, real numbers) and the
OpenAI-compatible ``/v1/embeddings`` client against a tiny stub server started here."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import numpy as np
import pytest

from cascade_router.embeddings import DEFAULT_EMBEDDER, EmbeddingError, Embedder, load_embedder
from cascade_router.embeddings.onnx_minilm import DIM, MODEL_ID, MiniLMEmbedder
from cascade_router.embeddings.openai_compat import OpenAICompatEmbedder

Q = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"
UNRELATED = "How tall is the Eiffel Tower?"




# --- the embedded model ---------------------------------------------------------------------------


def test_minilm_shape_dtype_and_unit_norms(emb):
    assert isinstance(emb, MiniLMEmbedder) and isinstance(emb, Embedder)
    assert DEFAULT_EMBEDDER == "minilm" and emb.dim == DIM == 384 and emb.model_id == MODEL_ID
    texts = [Q, PARAPHRASE, UNRELATED, "a", "Paris " * 400]  # the last one is truncated to 256 tokens
    v = emb.embed(texts)
    assert v.shape == (5, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(v))
    # a tuple is a sequence of strings too
    np.testing.assert_array_equal(emb.embed(tuple(texts[:2])), v[:2])


def test_identical_texts_give_identical_vectors(emb):
    v = emb.embed([Q, UNRELATED, Q])
    np.testing.assert_array_equal(v[0], v[2])
    np.testing.assert_array_equal(emb.embed([Q])[0], v[0])
    assert float(v[0] @ v[2]) == pytest.approx(1.0, abs=1e-6)


def test_a_paraphrase_is_closer_than_an_unrelated_question(emb):
    q, para, other, river = emb.embed([Q, PARAPHRASE, UNRELATED, "What is the largest river in France?"])
    s_para, s_other, s_river = float(q @ para), float(q @ other), float(q @ river)
    # measured with the real model: 0.942, 0.309, 0.670
    assert s_para == pytest.approx(0.942, abs=0.02)
    assert s_other == pytest.approx(0.309, abs=0.05)
    assert s_river == pytest.approx(0.670, abs=0.05)
    assert s_para > s_river > s_other
    assert s_para - s_other > 0.5


def test_batch_of_one_and_batch_of_32_agree(emb):
    # different lengths, so the batched pass pads and masks; 40 texts = a batch of 32 and one of 8
    texts = [f"question {i} about " + "a rather long topic " * (i % 9) + "and things" for i in range(40)]
    together = emb.embed(texts)
    one_by_one = np.concatenate([emb.embed([t]) for t in texts])
    assert emb.batch_size == 32 and together.shape == (40, 384)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_empty_list_and_bad_input(emb):
    empty = emb.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="one string"):
        emb.embed(Q)
    with pytest.raises(ValueError, match=r"texts\[1\] must be a string, got int"):
        emb.embed([Q, 3])
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)


@pytest.mark.parametrize("spec", ["nope", "", "model@not-a-url", "MINILM"])
def test_unknown_embedder_spec_lists_the_forms(spec):
    with pytest.raises(ValueError) as e:
        load_embedder(spec)
    assert repr(spec.strip()) in str(e.value)
    assert "minilm" in str(e.value) and "MODEL@BASE_URL" in str(e.value)


# --- an OpenAI-compatible endpoint ----------------------------------------------------------------

#: The raw (not unit) vector the stub returns for each text; the client must re-normalise them.
RAW = {"alpha": [3.0, 4.0, 0.0], "beta": [0.0, 0.0, 2.0], "gamma": [1.0, 1.0, 1.0], "delta": [0.0, -5.0, 0.0],
       "eps": [10.0, 0.0, 0.0]}


class EmbeddingsStub:
    """``POST /v1/embeddings`` on 127.0.0.1: one raw vector per input, the ``data`` list in
    REVERSE order (each item carries its ``index``). ``status``/``reply`` override the answer;
    every request is recorded as ``(path, headers, body)``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        self.status = 200
        self.reply = None  # a dict or str replacing the normal reply
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if stub.reply is not None:
                    reply = stub.reply
                elif stub.status != 200:
                    reply = {"error": {"message": "boom", "type": "server_error"}}
                else:
                    data = [{"object": "embedding", "index": i, "embedding": RAW[t]} for i, t in enumerate(body["input"])]
                    reply = {"object": "list", "model": body["model"], "data": data[::-1],
                             "usage": {"prompt_tokens": len(data), "total_tokens": len(data)}}
                raw = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def stub():
    s = EmbeddingsStub()
    yield s
    s.close()


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_openai_compat_renormalises_and_keeps_input_order(stub, monkeypatch):
    monkeypatch.setenv("EMBED_TEST_KEY", "sk-embed")
    e = load_embedder(f"text-embed-x@{stub.base}", api_key_env="EMBED_TEST_KEY")  # "/v1" is added
    try:
        assert isinstance(e, OpenAICompatEmbedder) and isinstance(e, Embedder)
        assert e.base_url == stub.base + "/v1" and e.model_id == "text-embed-x" and e.dim == 0
        texts = ["gamma", "alpha", "delta", "beta"]
        v = e.embed(texts)
        assert v.shape == (4, 3) and v.dtype == np.float32 and e.dim == 3
        np.testing.assert_allclose(v, np.stack([_unit(RAW[t]) for t in texts]), atol=1e-6)
        np.testing.assert_allclose(v[1], [0.6, 0.8, 0.0], atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
        ((path, headers, body),) = stub.requests
        assert path == "/v1/embeddings"
        assert body == {"model": "text-embed-x", "input": texts}
        assert headers["authorization"] == "Bearer sk-embed"
        assert e.embed([]).shape == (0, 3)  # no request for no text
        assert len(stub.requests) == 1
    finally:
        e.close()


def test_openai_compat_batches_requests_in_order(stub):
    e = OpenAICompatEmbedder("m", stub.base + "/v1/", api_key_env=None, batch_size=2)
    try:
        texts = ["eps", "alpha", "beta", "gamma", "delta"]
        v = e.embed(texts)
        assert [b["input"] for _, _, b in stub.requests] == [["eps", "alpha"], ["beta", "gamma"], ["delta"]]
        assert "authorization" not in stub.requests[0][1]
        np.testing.assert_allclose(v, np.stack([_unit(RAW[t]) for t in texts]), atol=1e-6)
    finally:
        e.close()


@pytest.mark.parametrize("status,reply,match", [
    (500, None, "embeddings request failed"),
    (200, {"object": "list", "data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}]}, "1 vectors for 2 texts"),
    (200, {"object": "list", "data": [{"index": i, "embedding": [1.0] * 3} for i in range(3)]}, "3 vectors for 2 texts"),
    (200, "not json", "bad embeddings reply"),
    (200, {"object": "list"}, "bad embeddings reply"),
    (200, {"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": [1.0]}]}, "different lengths"),
])
def test_openai_compat_errors(stub, status, reply, match):
    stub.status, stub.reply = status, reply
    e = OpenAICompatEmbedder("m", stub.base, api_key_env=None)
    try:
        with pytest.raises(EmbeddingError, match=match) as ei:
            e.embed(["alpha", "beta"])
        assert f"m@{stub.base}/v1" in str(ei.value)
    finally:
        e.close()


def test_openai_compat_unreachable_is_an_embedding_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    e = OpenAICompatEmbedder("m", f"http://127.0.0.1:{port}", api_key_env=None, timeout_s=5)
    try:
        with pytest.raises(EmbeddingError, match="embeddings request failed"):
            e.embed(["alpha"])
        with pytest.raises(ValueError, match="one string"):
            e.embed("alpha")
    finally:
        e.close()
