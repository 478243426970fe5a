"""Backend 1: llama.cpp in-process through the prebuilt ``xllamacpp`` wheel (any GGUF file)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx

from .base import Generation, ModelError, Prompt
from .parsing import parse_response
from .sse import OnToken, stream_generation


class LlamaCppBackend:
    """A GGUF model run in this process by llama.cpp (``xllamacpp.Server``).

    Greedy decoding (temperature 0). ``parallel`` llama.cpp slots (default 1): with more than one,
    that many calls from different threads are decoded together in one batch (llama.cpp's
    continuous batching), each slot with its own ``n_ctx`` window. Consecutive prompts that share
    a prefix (few-shot examples, then the passage) reuse a slot's KV cache (llama.cpp gives a
    request the slot whose cached prompt is most similar): ``Generation.cached_prompt_tokens``
    says how many prompt tokens were not evaluated again. At most ``parallel`` calls run at once
    (more wait), so the object may be shared between threads.

    Args:
        path: the GGUF file.
        family: prompt family, ``"chat"`` (use the model's chat template) or ``"base"``
            (raw completion prompts).
        model_id: name recorded in generations (default: the file name).
        n_ctx: context window in tokens, per slot (default 4096).
        threads: CPU threads for generation and prompt processing (default: all cores).
        top_k: top-k logprobs returned per generated token (default 5).
        parallel: llama.cpp slots, calls decoded at once (default 1; memory for the KV cache
            grows with ``parallel * n_ctx``).
        serve_http: llama.cpp always opens an OpenAI-compatible HTTP server on a free
            127.0.0.1 port beside the in-process API; :attr:`base_url` gives its address.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelError: llama.cpp could not load the file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        family: str = "chat",
        model_id: str | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        top_k: int = 5,
        parallel: int = 1,
    ) -> None:
        import xllamacpp

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        if family not in ("chat", "base"):
            raise ValueError(f"family must be 'chat' or 'base', got {family!r}")
        self.path = path
        self.family = family
        self.model_id = model_id or path.name
        self.n_ctx = int(n_ctx)
        self.top_k = int(top_k)
        self.threads = int(threads or os.cpu_count() or 1)
        self.parallel = int(parallel)
        if self.parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {parallel!r}")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.n_ctx * self.parallel  # llama.cpp splits the window between the slots
        params.n_parallel = self.parallel
        params.verbosity = -1
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.sampling.temp = 0.0
        # Sliding-window-attention models (Gemma 3) can only reuse a cached prompt prefix when the
        # KV cache keeps every position; small models pay little memory for it.
        params.swa_full = True
        try:
            self._server = xllamacpp.Server(params)
        except Exception as e:  # llama.cpp raises a plain RuntimeError on a bad file
            raise ModelError(f"llama.cpp could not load {path}: {e}") from e
        self.base_url: str = self._server.listening_address
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(600.0, connect=5.0))
        self._slots = threading.BoundedSemaphore(self.parallel)
        self._stops: dict[str, list[int]] = {}

    def generate(self, prompt: Prompt, on_token: OnToken | None = None) -> Generation:
        """Greedy generation with per-token logprobs and top-k alternatives.

        Args:
            prompt: what to complete.
            on_token: None (one call, the answer when complete), or a callback that sees the
                generation after every token and may stop it (see
                :func:`cascade_router.models.sse.stream_generation`); the generation is then
                streamed through llama.cpp's own HTTP server in this process, with the same
                tokens and logprobs.

        Raises:
            ModelError: llama.cpp returned an error (for example a prompt over ``n_ctx``).
        """
        req: dict = {
            "max_tokens": prompt.max_tokens,
            "temperature": float(prompt.temperature),
            "stop": prompt.stop,
            "cache_prompt": True,
        }
        if prompt.seed is not None:
            req["seed"] = int(prompt.seed)
        chat = prompt.messages is not None
        if chat:
            req.update(messages=prompt.messages, logprobs=True, top_logprobs=self.top_k)
        else:
            req.update(prompt=prompt.text, logprobs=self.top_k, n_probs=self.top_k)
        t0 = time.perf_counter()
        with self._slots:
            if on_token is not None:
                path = "/v1/chat/completions" if chat else "/v1/completions"
                req["timings_per_token"] = True  # prompt tokens are known even if the caller stops early
                try:
                    stop_ids = [self._stop_ids(x) for x in prompt.stop]
                    return stream_generation(self._http, path, req, chat=chat, model=self.model_id, on_token=on_token,
                                             stop_ids=stop_ids, detokenize=self._detokenize)
                except httpx.HTTPError as e:
                    raise ModelError(f"{self.model_id}: llama.cpp failed: {e}") from e
            try:
                if chat:
                    resp = self._server.handle_chat_completions(req)
                else:
                    resp = self._server.handle_completions(req)
            except Exception as e:
                raise ModelError(f"{self.model_id}: llama.cpp failed: {e}") from e
        return parse_response(resp, chat=chat, model=self.model_id, latency_s=time.perf_counter() - t0)

    def _stop_ids(self, stop: str) -> list[int]:
        """The token ids llama.cpp matches a stop string with (tokenized alone, no special
        tokens: as its server does), cached."""
        ids = self._stops.get(stop)
        if ids is None:
            r = self._http.post("/tokenize", json={"content": stop, "add_special": False, "parse_special": False})
            r.raise_for_status()
            ids = self._stops[stop] = [t if isinstance(t, int) else t["id"] for t in r.json()["tokens"]]
        return ids

    def _detokenize(self, ids: list[int]) -> str:
        r = self._http.post("/detokenize", json={"tokens": ids})
        r.raise_for_status()
        return r.json()["content"]

    def render(self, prompt: Prompt) -> str:
        """The exact prompt text llama.cpp evaluates (chat template applied for chat prompts)."""
        if prompt.messages is None:
            return prompt.text or ""
        r = self._http.post("/apply-template", json={"messages": prompt.messages})
        r.raise_for_status()
        return r.json()["prompt"]

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` under this model's tokenizer (special tokens parsed)."""
        r = self._http.post("/tokenize", json={"content": text, "add_special": True, "parse_special": True})
        r.raise_for_status()
        return len(r.json()["tokens"])

    def prompt_tokens(self, prompt: Prompt) -> int:
        """Tokens the prompt will occupy in the context window."""
        return self.count_tokens(self.render(prompt))

    def close(self) -> None:
        """Release the HTTP client and the model."""
        self._http.close()
        self._server = None

    def __repr__(self) -> str:
        return f"LlamaCppBackend({self.model_id!r}, family={self.family!r}, n_ctx={self.n_ctx}, parallel={self.parallel})"
