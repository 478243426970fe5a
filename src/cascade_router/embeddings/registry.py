"""Embedder specs: ``minilm`` (embedded, offline) or ``MODEL@BASE_URL`` (an endpoint)."""

from __future__ import annotations

from .base import Embedder

#: The embedded default.
DEFAULT_EMBEDDER = "minilm"


def load_embedder(spec: str = DEFAULT_EMBEDDER, *, threads: int | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                  timeout_s: float = 30.0) -> Embedder:
    """Open an embedder.

    Args:
        spec: ``minilm`` or ``MODEL@BASE_URL``.
        threads: onnxruntime threads for ``minilm`` (default all cores).
        api_key_env, timeout_s: for an endpoint.

    Raises:
        ValueError: an unknown spec (the message lists the forms). EmbeddingError: the embedded
            model's package is missing.
    """
    spec = (spec or "").strip()
    if spec == DEFAULT_EMBEDDER:
        from .onnx_minilm import MiniLMEmbedder

        return MiniLMEmbedder(threads=threads)
    if "@" in spec and "://" in spec.split("@", 1)[1]:
        from .openai_compat import OpenAICompatEmbedder

        model, url = spec.split("@", 1)
        return OpenAICompatEmbedder(model, url, api_key_env=api_key_env, timeout_s=timeout_s)
    raise ValueError(f"unknown embedder {spec!r}; valid: {DEFAULT_EMBEDDER} (embedded, offline) or MODEL@BASE_URL")
