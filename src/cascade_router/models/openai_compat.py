"""Backend 2: any OpenAI-compatible HTTP endpoint (llama.cpp server, vLLM, Ollama, OpenAI)."""

from __future__ import annotations

import logging
import os
import time

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from .base import Generation, ModelError, Prompt
from .parsing import parse_response
from .sse import OnToken, stream_generation

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

log = logging.getLogger(__name__)


def _retryable(e: BaseException) -> bool:
    if isinstance(e, httpx.HTTPStatusError):
        return e.response.status_code in _RETRY_STATUS
    return isinstance(e, httpx.TransportError)


class OpenAICompatBackend:
    """A model behind ``/v1/chat/completions`` (family ``chat``) or ``/v1/completions`` (``base``).

    Asks for logprobs and ``top_k`` top logprobs; where the server returns none, the Generation's
    ``logprobs`` is ``None`` and the cascade routes on the signals that remain (answer length).

    Args:
        model: the model name the server knows.
        base_url: e.g. ``http://127.0.0.1:8080/v1`` (a missing ``/v1`` is added).
        family: ``"chat"`` or ``"base"``.
        api_key_env: name of the environment variable holding the API key (never the key
            itself); unset or empty variable -> no ``Authorization`` header.
        timeout_s: per-request timeout in seconds (reading the reply, writing the request,
            waiting for a pooled connection).
        connect_timeout_s: seconds to open a connection (default 3: a host that does not
            answer fails fast, while a slow model still gets ``timeout_s``).
        retries: attempts after the first on timeouts, connection errors, 429 and 5xx,
            with exponential backoff (0.5 s, 1 s, 2 s, ... capped at 8 s).
        top_k: top logprobs requested per token (OpenAI allows at most 20).
        n_ctx: the model's context window in tokens, if known (enables passage truncation).
        logprobs: ``True`` (always ask), ``False`` (never), or ``"auto"`` (the default): ask only
            while :attr:`need_logprobs` (a gate reads this tier's signals), and when the server
            answers 400 naming logprobs, retry once without them and stop asking.

    Raises (from :meth:`generate`):
        ModelError: unreachable after the retries, a non-retryable HTTP error, or a bad body.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        family: str = "chat",
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        retries: int = 2,
        top_k: int = 5,
        n_ctx: int | None = None,
        logprobs: bool | str = "auto",
        connect_timeout_s: float = 3.0,
    ) -> None:
        if family not in ("chat", "base"):
            raise ValueError(f"family must be 'chat' or 'base', got {family!r}")
        if logprobs not in (True, False, "auto"):
            raise ValueError(f"logprobs must be true, false or 'auto', got {logprobs!r}")
        self.logprobs = logprobs
        #: with ``logprobs="auto"``: whether anything reads this tier's logprobs (a gate after it,
        #: or an evaluation storing every signal); set by the cascade and the eval runner.
        self.need_logprobs = True
        self.logprobs_refused = False  # the server answered 400 naming logprobs once
        base_url = base_url.rstrip("/")
        if not base_url.endswith("/v1"):
            base_url += "/v1"
        self.model_id = model
        self.base_url = base_url
        self.family = family
        self.top_k = int(top_k)
        self.n_ctx = n_ctx
        self.retries = int(retries)
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = min(float(connect_timeout_s), self.timeout_s)
        headers = {}
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(base_url=base_url, headers=headers,
                                  timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s))

    def _post(self, path: str, body: dict) -> dict:
        r = self._http.post(path, json=body)
        r.raise_for_status()
        return r.json()

    def generate(self, prompt: Prompt, on_token: OnToken | None = None) -> Generation:
        """One greedy generation (temperature 0). See the class docstring for errors.

        ``on_token``: None (one call, the reply when complete), or a callback that sees the
        generation after every streamed chunk and may stop it (``stream: true``; see
        :func:`cascade_router.models.sse.stream_generation`). A streamed call is retried only
        while nothing has reached the callback, and ``timeout_s`` bounds the whole stream.
        """
        chat = prompt.messages is not None
        body: dict = {"model": self.model_id, "max_tokens": prompt.max_tokens, "temperature": float(prompt.temperature)}
        if prompt.seed is not None:
            body["seed"] = int(prompt.seed)
        if prompt.stop:
            body["stop"] = prompt.stop
        ask = self.logprobs is True or (self.logprobs == "auto" and self.need_logprobs and not self.logprobs_refused)
        if chat:
            body.update(messages=prompt.messages)
            if ask:
                body.update(logprobs=True, top_logprobs=self.top_k)
            path = "/chat/completions"
        else:
            body.update(prompt=prompt.text)
            if ask:
                body.update(logprobs=self.top_k)
            path = "/completions"
        t0 = time.perf_counter()
        if on_token is None:
            resp = self._asking(path, body, ask)
            return parse_response(resp, chat=chat, model=self.model_id, latency_s=time.perf_counter() - t0)
        seen = [False]  # a stream already read from is not retried

        def tell(partial: Generation):
            seen[0] = True
            return on_token(partial)

        def call():
            return stream_generation(self._http, path, body, chat=chat, model=self.model_id, on_token=tell,
                                     deadline_s=self.timeout_s, held_stops=bool(body.get("stop")))

        return self._asking(path, body, ask, send=call, again=lambda: not seen[0])

    def _asking(self, path: str, body: dict, ask: bool, send=None, again=None):
        """:meth:`_request`, and once more without logprobs when ``logprobs="auto"`` and the server
        answered 400 naming them (then this tier stops asking). Raises ModelError."""
        try:
            return self._request(path, body, send=send, again=again)
        except httpx.HTTPStatusError as e:
            refused = e.response.status_code == 400 and "logprob" in e.response.text.lower()
            if not (refused and ask and self.logprobs == "auto"):
                raise self._error(e) from e
            log.warning("%s@%s refuses logprobs (HTTP 400); asking without them from now on: "
                        "gates on logprob signals cannot fire for this tier", self.model_id, self.base_url)
            self.logprobs_refused = True
            for k in ("logprobs", "top_logprobs"):
                body.pop(k, None)
            try:
                return self._request(path, body, send=send, again=again)
            except httpx.HTTPStatusError as e2:
                raise self._error(e2) from e2

    def _error(self, e: httpx.HTTPStatusError) -> ModelError:
        return ModelError(f"{self.model_id}@{self.base_url}: HTTP {e.response.status_code}: {e.response.text[:300]}")

    def _request(self, path: str, body: dict, send=None, again=None):
        """POST with retries on timeouts, connection errors, 429 and 5xx.

        ``send``: what one attempt does (default: POST ``body`` and decode the JSON reply);
        ``again``: a retry happens only while this returns True (a stream already read from is
        not replayed).

        Raises:
            httpx.HTTPStatusError: a non-retryable status (or retries spent on one).
            ModelError: unreachable, a reply that is not JSON, a request that is not valid text.
        """
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.retries + 1),
                wait=wait_exponential(multiplier=0.5, max=8),
                retry=retry_if_exception(lambda e: _retryable(e) and (again is None or again())),
                reraise=True,
            ):
                with attempt:
                    return send() if send is not None else self._post(path, body)
        except httpx.HTTPStatusError:
            raise
        except (httpx.TransportError, RetryError) as e:
            raise ModelError(
                f"{self.model_id}@{self.base_url}: unreachable after {self.retries + 1} attempts "
                f"(timeout {self.timeout_s:g} s): {e!r}"
            ) from e
        except UnicodeEncodeError as e:  # a ValueError too: the request, not the reply, is bad
            raise ModelError(f"{self.model_id}@{self.base_url}: the request text is not valid Unicode: {e}") from e
        except ValueError as e:
            raise ModelError(f"{self.model_id}@{self.base_url}: reply is not JSON: {e}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    def prompt_tokens(self, prompt: Prompt) -> int | None:
        """Unknown for a generic endpoint: returns ``None`` (no client-side truncation)."""
        return None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __repr__(self) -> str:
        return f"OpenAICompatBackend({self.model_id!r} @ {self.base_url}, family={self.family!r})"
