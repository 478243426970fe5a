"""The embedder interface and its error."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


class EmbeddingError(RuntimeError):
    """An embedding backend failed (missing model package, unreachable endpoint, bad reply)."""


@runtime_checkable
class Embedder(Protocol):
    """Texts to unit vectors.

    Attributes:
        model_id: the embedding model's name (part of every cache key built on its vectors).
        dim: vector dimension.
    """

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, shape ``(len(texts), dim)`` (``(0, dim)`` for no text).

        Raises:
            EmbeddingError: the backend failed. ValueError: ``texts`` is not a sequence of str.
        """
        ...

    def close(self) -> None:
        """Release sessions and sockets."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list; ValueError naming the first item that is not a string."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, got one string (wrap it in a list)")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] must be a string, got {type(t).__name__}")
    return out


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)
