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
from .parsing import StreamAssembler, parse_response

#: ``on_token(partial)`` is called after every chunk that adds text or tokens, with the generation
#: so far; returning True stops the generation there (the connection is closed, so the server
#: stops generating too).
OnToken = Callable[[Generation], "bool | None"]

#: ``finish_reason`` of a generation the caller stopped through ``on_token``.
EARLY_STOP = "early_stop"


class StreamBroken(ModelError):
    """A stream that ended, or was cut, after it had started (not retried: its text may have
    reached the caller)."""


def stream_generation(client: httpx.Client, path: str, body: dict, *, chat: bool, model: str,
                      on_token: OnToken, stop_ids: list[list[int]] | None = None,
                      deadline_s: float | None = None, detokenize: Callable[[list[int]], str] | None = None,
                      held_stops: bool = False) -> Generation:
    """POST ``body`` with ``stream: true`` (and ``stream_options.include_usage``) to ``path`` and
    assemble the server-sent events into a :class:`Generation`.

    Args:
        client: an httpx client whose base URL ends where ``path`` starts.
        path: ``/chat/completions`` or ``/completions`` (under the client's base URL).
        body: the request body, as for the non-streamed call.
        chat: chat-completions chunks (True) or completions chunks (False).
        model: the model id recorded and named in errors.
        on_token: see :data:`OnToken`.
        stop_ids, held_stops: how the stop string's tokens are recognised (see
            :class:`~.parsing.StreamAssembler`).
        deadline_s: seconds the whole call may take (None: no bound beyond the client's
            timeouts, which bound each read): a server that trickles tokens or keep-alive
            comments is cut there.
        detokenize: token ids -> text; with ``stop_ids``, the text of tokens held back as a
            possible stop string when the stream ends otherwise (llama.cpp never sends it).

    Returns:
        The generation; ``latency_s`` is seconds from sending to the last chunk read;
        ``finish_reason`` is :data:`EARLY_STOP` when ``on_token`` stopped it. A server that
        ignores ``stream`` and answers one JSON body is read as a non-streamed reply.

    Raises:
        httpx.HTTPStatusError: the server answered an error status (its body read).
        httpx.TransportError: connection or read failures before any chunk (including timeouts).
        StreamBroken: the stream was cut, timed out or passed ``deadline_s`` after it started.
        ModelError: a chunk that is not JSON, an error object, a malformed chunk, a stream
            without any answer or that ended before its ``finish_reason`` / ``[DONE]``.
    """
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    asm = StreamAssembler(chat, model, stop_ids, held_stops, body.get("stop"))
    t0 = time.perf_counter()
    stopped = done = False
    events = 0
    with client.stream("POST", path, json=body) as r:
        if r.status_code >= 400:
            r.read()
            r.raise_for_status()
        if "text/event-stream" not in r.headers.get("content-type", "") and "json" in r.headers.get("content-type", ""):
            r.read()  # the server ignored stream: one JSON body (an answer or an error object)
            try:
                reply = r.json()
            except ValueError as e:
                raise ModelError(f"{model}: reply is not JSON: {e}") from None
            gen = parse_response(reply, chat=chat, model=model, latency_s=time.perf_counter() - t0)
            on_token(gen)
            return gen
        try:
            for line in r.iter_lines():
                if deadline_s is not None and time.perf_counter() - t0 > deadline_s:
                    raise StreamBroken(f"{model}: the stream passed its {deadline_s:g} s deadline "
                                       f"after {len(asm.tokens)} tokens")
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                events += 1
                try:
                    chunk = json.loads(data)
                except ValueError as e:
                    raise ModelError(f"{model}: stream chunk is not JSON: {e}: {data[:200]}") from None
                if asm.add(chunk) and on_token(asm.partial(time.perf_counter() - t0)):
                    stopped = True
                    break
        except httpx.TransportError as e:
            if events == 0:
                raise
            raise StreamBroken(f"{model}: the stream broke after {len(asm.tokens)} tokens: {e!r}") from e
    if stopped:
        return asm.generation(time.perf_counter() - t0, EARLY_STOP)
    if events == 0 or asm.chunks == 0:
        raise ModelError(f"{model}: the stream carried no answer ({events} events, none with a choice)")
    if asm.finish_reason is None:
        raise StreamBroken(f"{model}: the stream ended before the answer was complete "
                           f"({len(asm.tokens)} tokens, no finish_reason{'' if done else ', no [DONE]'})")
    tail = asm.held_tail() if asm.finish_reason != "stop" and detokenize is not None else []
    if tail:
        asm.parts.append(detokenize(tail))
    return asm.generation(time.perf_counter() - t0)
