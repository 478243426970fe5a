"""Streamed generations over HTTP: one ``stream: true`` request to an OpenAI-compatible server
(an endpoint tier, or llama.cpp's own server inside an in-process tier), read chunk by chunk.

Used where a caller must see the answer while it is generated: the server streams the answering
tier's text to its client, and early escalation stops a first tier whose gate is already decided
(:mod:`cascade_router.early`).
"""

from __future__ import annotations

import json
import time
from typing import Callable

import httpx

from .base import Generation, ModelError
from .parsing import StreamAssembler

#: ``on_token(partial)`` is called after every chunk that adds text or tokens, with the generation
#: so far; returning True stops the generation there (the connection is closed, so the server
#: stops generating too).
OnToken = Callable[[Generation], "bool | None"]

#: ``finish_reason`` of a generation the caller stopped through ``on_token``.
EARLY_STOP = "early_stop"


def stream_generation(client: httpx.Client, path: str, body: dict, *, chat: bool, model: str,
                      on_token: OnToken) -> Generation:
    """POST ``body`` with ``stream: true`` (and ``stream_options.include_usage``) to ``path`` and
    assemble the server-sent events into a :class:`Generation`.

    Args:
        client: an httpx client whose base URL ends where ``path`` starts.
        path: ``/chat/completions`` or ``/completions`` (under the client's base URL).
        body: the request body, as for the non-streamed call.
        chat: chat-completions chunks (True) or completions chunks (False).
        model: the model id recorded and named in errors.
        on_token: see :data:`OnToken`.

    Returns:
        The generation; ``latency_s`` is seconds from sending to the last chunk read;
        ``finish_reason`` is :data:`EARLY_STOP` when ``on_token`` stopped it (usage is then
        counted from the tokens read: ``completion_tokens = len(tokens)``).

    Raises:
        httpx.HTTPStatusError: the server answered an error status (its body read).
        httpx.TransportError: connection or read failures (including timeouts).
        ModelError: a chunk that is not JSON, an error object, a malformed chunk.
    """
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    asm = StreamAssembler(chat, model)
    t0 = time.perf_counter()
    stopped = False
    with client.stream("POST", path, json=body) as r:
        if r.status_code >= 400:
            r.read()
            r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError as e:
                raise ModelError(f"{model}: stream chunk is not JSON: {e}: {data[:200]}") from None
            if asm.add(chunk) and on_token(asm.generation(time.perf_counter() - t0)):
                stopped = True
                break
    if stopped:
        asm.usage = {**asm.usage, "completion_tokens": len(asm.tokens)}
        return asm.generation(time.perf_counter() - t0, EARLY_STOP)
    return asm.generation(time.perf_counter() - t0)
