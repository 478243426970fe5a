"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

import os
from typing import Sequence

import httpx
import numpy as np

from .base import EmbeddingError, check_texts, normalise


class OpenAICompatEmbedder:
    """Vectors from ``POST {base_url}/embeddings`` (OpenAI's API; vLLM, llama.cpp server with
    ``--embedding``, Ollama). Returned vectors are re-normalised to unit length.

    Args:
        model: the embedding model the server knows.
        base_url: e.g. ``http://127.0.0.1:8080/v1`` (a missing ``/v1`` is added).
        api_key_env: the NAME of the variable holding the API key (unset: no header).
        timeout_s: per-request timeout in seconds.
        batch_size: texts per request.

    Raises (from :meth:`embed`):
        EmbeddingError: unreachable, an HTTP error, or a reply without one vector per text.
    """

    def __init__(self, model: str, base_url: str, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout_s: float = 30.0, batch_size: int = 64) -> None:
        base_url = base_url.rstrip("/")
        if not base_url.endswith("/v1"):
            base_url += "/v1"
        self.model_id = model
        self.base_url = base_url
        self.batch_size = int(batch_size)
        self.dim = 0  # known after the first reply
        headers = {}
        key = os.environ.get(api_key_env or "", "") if api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, headers=headers)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        rows: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            part = texts[i:i + self.batch_size]
            try:
                r = self._http.post("/embeddings", json={"model": self.model_id, "input": part})
                r.raise_for_status()
                data = sorted(r.json()["data"], key=lambda d: d["index"])
                vecs = [d["embedding"] for d in data]
            except httpx.HTTPError as e:
                raise EmbeddingError(f"{self.model_id}@{self.base_url}: embeddings request failed: {e}") from e
            except (ValueError, KeyError, TypeError) as e:
                raise EmbeddingError(f"{self.model_id}@{self.base_url}: bad embeddings reply: {e!r}") from e
            if len(vecs) != len(part):
                raise EmbeddingError(f"{self.model_id}@{self.base_url}: {len(vecs)} vectors for {len(part)} texts")
            rows.extend(vecs)
        if not rows:
            return np.zeros((0, self.dim), np.float32)
        try:
            out = normalise(np.array(rows, dtype=np.float32))
        except ValueError as e:  # ragged vectors
            raise EmbeddingError(f"{self.model_id}@{self.base_url}: vectors of different lengths") from e
        self.dim = out.shape[1]
        return out

    def close(self) -> None:
        self._http.close()
