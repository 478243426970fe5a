"""The OpenAI wire format of the server: response bodies, server-sent events, errors, and the
``cascade`` extension object.

Nothing here runs a model or touches shared state: every function turns a
:class:`~cascade_router.cascade.CascadeResult` (and the parsed :class:`~.schemas.Query`) into
the JSON OpenAI clients expect.

* ``chat.completion`` / ``text_completion`` bodies (:func:`chat_body`, :func:`completion_body`)
  and their streamed forms, ``chat.completion.chunk`` / ``text_completion`` events
  (:func:`chat_events`, :func:`completion_events`, sent by :func:`sse`).
* Errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``
  (:func:`error_body`, :func:`error_response`).
* Model objects of ``GET /v1/models`` (:func:`model_object`).
* The ``cascade`` extension object (:func:`extension`), in non-streamed bodies and in the last
  streamed chunk that carries a choice:

  ``route`` (the tier name that answered, or ``"abstain"``), ``start`` (the tier the cascade
  started at), ``escalated``, ``degraded``, ``error``, ``task``, ``question``,
  ``passage_chars``, ``max_tokens``; ``tiers``: one entry per tier that ran, in order (``name``,
  ``model``, ``answer``, ``prompt_tokens``, ``completion_tokens``, ``cached_prompt_tokens``,
  ``latency_s`` (model seconds), ``queue_s`` (seconds waited for one of the tier's call slots),
  ``finish_reason`` (``early_stop`` when early escalation stopped it), ``truncated_context``,
  ``cost_usd``, ``signals``, ``unavailable_signals``: the signals that could not be measured,
  e.g. without logprobs); ``gates``: every gate decision, in order (``after``, ``router``,
  ``score``, ``threshold``, ``outcome`` accept|escalate|abstain, ``reasons``, ``early``: decided
  before the tier's answer was complete); ``failures``: ``[{tier, error}]``; ``cost_usd``
  (dollars over every tier that ran), ``latency_s`` (model seconds, summed) and ``queue_s``;
  ``cache``: null without a cache, else ``status`` (hit|miss|bypass), ``error``, and for a hit
  ``kind`` (exact|semantic), ``similarity``, ``cached_question``, ``original_route``, ``age_s``,
  ``lookup_s``, ``original`` (the first answer's tiers, cost, tokens). A hit has route and model
  ``cache``, no tier runs and zero ``usage``; ``pregate``: null, or the pre-generation gate's
  ``router``, ``score``, ``threshold`` and ``outcome`` (``escalate``: the first tier was skipped).

  Values pass through :func:`cascade_router.jsonsafe.json_safe`: an undefined signal (nan) is
  ``null``, an infinite score (``always-llm``) is the string ``"inf"``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import AsyncIterator, NamedTuple

from fastapi.responses import JSONResponse

from ..cascade import ABSTAIN_ROUTE, CACHE_ROUTE, CascadeResult
from ..jsonsafe import json_safe
from .schemas import Query



def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error object ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict | None = None) -> JSONResponse:
    """A JSON error response with OpenAI's error object and HTTP ``status``."""
    return JSONResponse(error_body(message, type_, param, code), status_code=status, headers=headers)


def model_object(model_id: str, tier: str, aliases: list[str], created: int) -> dict:
    """One OpenAI model object with the ``cascade`` extension ``{"tier", "aliases"}``."""
    return {"id": model_id, "object": "model", "created": int(created), "owned_by": "cascade-router",
            "cascade": {"tier": tier, "aliases": list(aliases)}}


# -- the pieces of one answered request ----------------------------------------------------------


class Meta(NamedTuple):
    """What a chat and a completions response share for one answered question."""

    id: str
    created: int  # unix seconds
    model: str  # the answering tier's model id, or "abstain"
    usage: dict
    cascade: dict  # the ``cascade`` extension object
    finish_reason: str


def answering_model(res: CascadeResult) -> str:
    """The response's ``model``: the model id of the tier whose answer is final, or ``abstain``."""
    if res.route in (ABSTAIN_ROUTE, CACHE_ROUTE):
        return res.route
    run = res.run(res.route)
    return run.model if run is not None else res.route


def usage(res: CascadeResult) -> dict:
    """OpenAI ``usage``: tokens summed over every tier that ran."""
    p, c = int(res.prompt_tokens), int(res.completion_tokens)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def finish_reason(res: CascadeResult) -> str:
    """The answering tier's finish reason (``stop`` or ``length``); ``stop`` when abstaining."""
    run = res.run(res.route)
    fr = run.generation.finish_reason if run is not None else None
    return fr if fr in ("stop", "length") else "stop"


def headers(res: CascadeResult) -> dict:
    """``x-cascade-route`` (the answering tier's name or ``abstain``), and
    ``x-cascade-degraded: true`` when a tier failed on the way."""
    h = {"x-cascade-route": res.route}
    if res.degraded:
        h["x-cascade-degraded"] = "true"
    if res.cache_status is not None:
        h["x-cascade-cache"] = "hit" if res.cache_status == "hit" else "miss"
    return h


def extension(res: CascadeResult, q: Query, max_tokens: int) -> dict:
    """The ``cascade`` extension object (see the module docstring)."""
    tiers = []
    for r in res.runs:
        g = r.generation
        tiers.append({
            "name": r.tier, "model": r.model, "answer": r.answer,
            "prompt_tokens": int(g.prompt_tokens), "completion_tokens": int(g.completion_tokens),
            "cached_prompt_tokens": g.cached_prompt_tokens, "latency_s": r.latency_s, "queue_s": r.queue_s,
            "finish_reason": g.finish_reason, "truncated_context": bool(g.truncated_context),
            "cost_usd": r.cost_usd, "signals": dict(r.signals), "unavailable_signals": r.unavailable,
        })
    gates = [{"after": d.after, "router": d.router, "score": d.score, "threshold": d.threshold,
              "outcome": d.outcome, "reasons": list(d.reasons), "early": d.early} for d in res.decisions]
    return json_safe({
        "route": res.route,
        "start": res.start,
        "escalated": res.escalated,
        "degraded": res.degraded,
        "error": res.error,
        "task": q.task,
        "question": q.question,
        "passage_chars": len(q.passage or ""),
        "max_tokens": int(max_tokens),
        "tiers": tiers,
        "gates": gates,
        "failures": [{"tier": f.tier, "error": f.error} for f in res.failures],
        "cost_usd": res.cost_usd,
        "latency_s": res.latency_s,
        "queue_s": res.queue_s,
        "cache": _cache_object(res),
        "pregate": None if res.pregate is None else {
            "router": res.pregate.router, "score": res.pregate.score, "threshold": res.pregate.threshold,
            "outcome": res.pregate.outcome},
    })


def _cache_object(res: CascadeResult) -> dict | None:
    """``{"status": hit|miss|bypass, ...}``; for a hit the matched question, its similarity, the
    original route (the tier that answered it first), its age and what it cost then."""
    if res.cache_status is None:
        return None
    out: dict = {"status": res.cache_status, "error": res.cache_error}
    hit = res.cache
    if hit is not None:
        out.update(kind=hit.kind, similarity=hit.similarity, cached_question=hit.question,
                   original_route=hit.route, age_s=hit.age_s, lookup_s=hit.lookup_s, original=hit.original)
    return out


def meta(res: CascadeResult, q: Query, max_tokens: int, id_prefix: str) -> Meta:
    """The fields both endpoints' responses share (a fresh ``id`` with ``id_prefix``)."""
    return Meta(f"{id_prefix}-{uuid.uuid4().hex[:24]}", int(time.time()), answering_model(res), usage(res),
                extension(res, q, max_tokens), finish_reason(res))


# -- bodies and events ---------------------------------------------------------------------------


def chat_body(m: Meta, content: str) -> dict:
    """A ``chat.completion`` body."""
    return {
        "id": m.id, "object": "chat.completion", "created": m.created, "model": m.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": None, "finish_reason": m.finish_reason}],
        "usage": m.usage, "system_fingerprint": None, "cascade": m.cascade,
    }


def completion_body(m: Meta, text: str) -> dict:
    """A ``text_completion`` body."""
    return {
        "id": m.id, "object": "text_completion", "created": m.created, "model": m.model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": m.finish_reason}],
        "usage": m.usage, "cascade": m.cascade,
    }


def pieces(text: str) -> list[str]:
    """``text`` cut into word-sized pieces whose concatenation is ``text``."""
    return re.findall(r"\s*\S+\s*|\s+", text) or []


def chat_chunk(m: Meta, delta: dict, finish_reason: str | None = None, **extra) -> dict:
    """One ``chat.completion.chunk`` event carrying ``delta`` (and ``extra`` top-level keys)."""
    return {"id": m.id, "object": "chat.completion.chunk", "created": m.created, "model": m.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}


def completion_chunk(m: Meta, text: str, finish_reason: str | None = None, **extra) -> dict:
    """One streamed ``text_completion`` event carrying ``text`` (and ``extra`` top-level keys)."""
    return {"id": m.id, "object": "text_completion", "created": m.created, "model": m.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}], **extra}


def usage_chunk(m: Meta, chat: bool) -> dict:
    """The last event when ``stream_options.include_usage``: no choices, the ``usage``."""
    ev = chat_chunk(m, {}) if chat else completion_chunk(m, "")
    ev["choices"] = []
    ev["usage"] = m.usage
    return ev


def content_events(m: Meta, text: str, chat: bool) -> list[dict]:
    """``text`` as word-sized content events (none for ``""``)."""
    if chat:
        return [chat_chunk(m, {"content": p}) for p in pieces(text)]
    return [completion_chunk(m, p) for p in pieces(text)]


def closing_events(m: Meta, chat: bool, include_usage: bool) -> list[dict]:
    """The finish event (with the ``cascade`` object), then a ``usage`` event if asked."""
    ev = (chat_chunk(m, {}, m.finish_reason, cascade=m.cascade) if chat
          else completion_chunk(m, "", m.finish_reason, cascade=m.cascade))
    return [ev] + ([usage_chunk(m, chat)] if include_usage else [])


def chat_events(m: Meta, content: str, include_usage: bool = False) -> list[dict]:
    """``chat.completion.chunk`` events: the role, the content in word-sized pieces, the finish
    (with the ``cascade`` object), then a ``usage`` chunk without choices if asked."""
    return ([chat_chunk(m, {"role": "assistant", "content": ""})] + content_events(m, content, True)
            + closing_events(m, True, include_usage))


def completion_events(m: Meta, text: str, include_usage: bool = False) -> list[dict]:
    """Streamed ``text_completion`` events: the text in word-sized pieces, the finish (with the
    ``cascade`` object), then a ``usage`` chunk without choices if asked."""
    return content_events(m, text, False) + closing_events(m, False, include_usage)


def sse_event(ev: dict) -> str:
    """One server-sent event: a ``data:`` line with the JSON of ``ev``."""
    return f"data: {json.dumps(ev, allow_nan=False)}\n\n"


#: The event that ends every stream.
SSE_DONE = "data: [DONE]\n\n"


def sse(events: list[dict]) -> AsyncIterator[str]:
    """An async iterator of server-sent events: one ``data:`` line per event, then ``[DONE]``."""

    async def gen():
        for ev in events:
            yield sse_event(ev)
        yield SSE_DONE

    return gen()
