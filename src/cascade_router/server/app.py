"""The OpenAI-compatible HTTP API in front of an N-tier :class:`~cascade_router.cascade.Cascade`.

Endpoints:

* ``POST /v1/chat/completions``: the cascade answers the last user message (passage convention:
  :mod:`cascade_router.server.schemas`). ``stream: true`` sends OpenAI ``chat.completion.chunk``
  server-sent events. A gated tier's answer is held until its gate decides (the decision needs
  the whole answer); the tier whose answer is final (the last tier, without an abstain gate)
  streams **live**: the response starts when that tier starts, with ``x-cascade-route`` naming
  it, and its text follows as it is generated (general chat answers token by token, less a
  short hold-back: :mod:`cascade_router.live`; a QA answer, one short line, when complete).
  An answer accepted by an earlier gate is sent at once in word-sized pieces. If the streaming
  tier fails after it started, the stream ends with the earlier tier's answer where nothing
  was sent yet (the last chunk's ``cascade`` object always says what happened); a client that
  disconnects stops the final tier's generation (a gated tier still finishes its answer).
* ``POST /v1/completions``: the same for a ``prompt`` string (``text_completion`` objects).
* ``GET /v1/models``: ``cascade`` and every tier; ``GET /v1/models/{model_id}``: one of them;
  ``GET /health``; ``GET /metrics`` (Prometheus, :mod:`cascade_router.server.metrics`).

The request's ``model`` field:

* a tier, by its NAME or by its model id (the first tier with that id), starts the cascade at
  that tier: the gates before it are skipped, the gates after it still decide (so naming the
  last tier asks it alone, apart from an abstain gate);
* ``slm`` and ``llm`` are aliases of the first and the last tier (unless a tier is named so);
* ``cascade``, an absent model or any other name routes from the first tier.

``GET /v1/models`` lists ``cascade`` and one object per tier, in order; a tier's ``id`` is its
model id, or its tier name when the model id is not unique among the tiers (or is another tier's
name), so every listed id is unique and selects its tier. Each object carries
``cascade: {"tier": name, "aliases": [...]}`` (the tier name, and ``slm``/``llm`` for the
first/last tier). ``GET /v1/models/{model_id}`` accepts every ``model`` value that names a tier
(and ``cascade``) and returns that list entry; names may contain ``/`` or ``@``.

Responses name the answering tier: the ``x-cascade-route`` header is its tier NAME (or
``abstain`` when the abstain gate after the last tier abstained; the content is then ``""``), the
``model`` field its model id (or ``abstain``); ``x-cascade-degraded: true`` when a tier failed on
the way and a later tier, or an earlier answer, was used. Every response carries the ``cascade``
extension object (route, start, per-tier runs, every gate decision, failures, cost; see
:mod:`cascade_router.server.wire`) and a ``usage`` summing the tokens of every tier that ran.

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 bad JSON,
schema or values (``param`` names the field; ``max_tokens_exceeded`` over the cap); 401
``invalid_api_key``; 404 ``model_not_found`` for an unknown ``GET /v1/models/{model_id}``, 404/405
unknown route or method; 413 ``request_too_large`` body over the size bound; 429 ``queue_full``
more requests waiting than the queue bound; 503 ``tier_unavailable`` a model tier failed
(the tier the cascade started at, or any tier with ``on_llm_error = "fail"``), the message names
the tier (``model tier NAME unavailable: ...``); 500 anything unexpected. The server keeps
serving after every one of them.

Concurrency: the event loop never runs a model. Cascade calls run in worker threads, at most
``max_concurrency`` at a time; up to ``max_queue`` more requests wait for a thread; beyond that
requests get 429 at once. A worker thread mostly waits: model work is bounded per tier by the
tier's own pool of call slots (``parallel``, :class:`~cascade_router.tiers.TierSlots`), which a
request holds only while it calls that tier, so requests that need only the first tier never
wait behind a slow or hung later tier (whose waiting calls fail after its ``queue_timeout_s``,
and whose circuit breaker then skips it). The module is split: the wire format lives in
:mod:`cascade_router.server.wire`, the API-key / body-size / metrics guard in
:mod:`cascade_router.server.guard`; this module holds the routes and the shared state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from functools import partial

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..cascade import CascadeResult, TierBusyError
from ..live import remaining
from ..models.base import ContextLengthError, ModelError
from ..prompts import CHAT_MAX_TOKENS
from . import wire
from .guard import Guard
from .metrics import CONTENT_TYPE, ServerMetrics
from .schemas import (
    CASCADE_MODEL,
    ChatCompletionRequest,
    CompletionRequest,
    Query,
    RequestError,
    query_from_chat,
    query_from_prompt,
)
from .wire import error_response

log = logging.getLogger(__name__)

#: The request header that bypasses the semantic cache (value ``no-cache``).
CACHE_CONTROL_HEADER = "x-cascade-cache-control"

#: Aliases of the first and the last tier (when no tier is literally named so).
FIRST_ALIAS, LAST_ALIAS = "slm", "llm"


@dataclasses.dataclass
class ServerSettings:
    """Limits and security of one server.

    Attributes:
        api_keys: accepted Bearer keys; empty = no authentication (loopback use only).
        max_concurrency: cascade calls running at once in worker threads (>= 1; a thread mostly
            waits for a tier, whose own ``parallel`` slots bound the model work).
        max_queue: admitted requests that may wait for a worker beyond those (>= 0); more get 429.
        max_body_bytes: request body bound in bytes (default 1 MiB); larger bodies get 413.
        max_tokens_cap: largest ``max_tokens`` a request may ask for (per tier, tokens); more
            gets 400. Requests without ``max_tokens`` use the cascade's configured budget.
        live_stream: stream the final tier's text while it is generated (default True); False
            sends every streamed answer when the cascade is done (the behaviour before live
            streaming, kept for comparison: ``benchmarks/serving_scale.py``).

    Raises:
        ValueError: a bound out of range.
    """

    api_keys: tuple[str, ...] = ()
    max_concurrency: int = 32
    max_queue: int = 64
    max_body_bytes: int = 1 << 20
    max_tokens_cap: int = 256
    live_stream: bool = True

    def __post_init__(self) -> None:
        self.api_keys = tuple(k for k in self.api_keys if k)
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.max_tokens_cap < 1:
            raise ValueError(f"max_tokens_cap must be >= 1, got {self.max_tokens_cap}")


def _is_type_label(part) -> bool:
    """True for the union-member labels pydantic adds to an error's location (``str``,
    ``list[ContentPart]``, ``function-after[...]``): not request fields, left out of ``param``."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "list", "dict", "none")
                                      or "[" in part or part.startswith(("function-", "is-instance")))


class TierDirectory:
    """Which tier a ``model`` value names, and the model ids the server lists.

    Args:
        names: the tier names, in order (unique).
        model_ids: each tier's model id (may repeat).
    """

    def __init__(self, names: list[str], model_ids: list[str]) -> None:
        self.names = list(names)
        self.model_ids = dict(zip(names, model_ids))
        self.aliases: dict[str, str] = {}  # alias -> tier name
        if self.names and FIRST_ALIAS not in self.names:
            self.aliases[FIRST_ALIAS] = self.names[0]
        if self.names and LAST_ALIAS not in self.names:
            self.aliases[LAST_ALIAS] = self.names[-1]
        ids = list(model_ids)
        #: The listed id of each tier: its model id when that is unique among the tiers, not
        #: another tier's name and not ``cascade``; else its tier name.
        self.listed: dict[str, str] = {}
        for name, mid in zip(self.names, ids):
            clash = ids.count(mid) > 1 or mid == CASCADE_MODEL or any(n != name and n == mid for n in self.names)
            self.listed[name] = name if clash else mid

    def resolve(self, model: str | None) -> str | None:
        """The tier name ``model`` starts at, or None (route from the first tier).

        Order: a tier name, then a tier's model id (the first tier with it), then the
        ``slm``/``llm`` aliases; ``cascade``, None and any other name give None.
        """
        if not model or model == CASCADE_MODEL:
            return None
        if model in self.model_ids:  # a tier name
            return model
        for name in self.names:
            if self.model_ids[name] == model:
                return name
        return self.aliases.get(model)

    def tier_aliases(self, name: str) -> list[str]:
        """The tier name and the ``slm``/``llm`` aliases that select tier ``name``."""
        return [name] + [a for a, t in self.aliases.items() if t == name]


class ServerState:
    """What the routes share: the cascade, settings, metrics, tier names and admission counters."""

    def __init__(self, cascade, settings: ServerSettings) -> None:
        self.cascade = cascade
        self.settings = settings
        self.tiers = TierDirectory([t.name for t in cascade.tiers], [t.model_id for t in cascade.tiers])
        self.pending = 0  # admitted cascade requests: running + waiting (event-loop thread only)
        self._limiter: anyio.CapacityLimiter | None = None
        self.started = time.time()
        self.metrics = ServerMetrics(in_flight=lambda: self.running, queued=lambda: self.pending - self.running,
                                     tiers=self.tiers.names,
                                     breakers={t.name: t.breaker for t in cascade.tiers if getattr(t, "breaker", None)},
                                     slots={t.name: t.slots for t in cascade.tiers if getattr(t, "slots", None)})

    @property
    def running(self) -> int:
        """Cascade calls holding a worker thread now."""
        return int(self._limiter.borrowed_tokens) if self._limiter is not None else 0

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created inside the event loop (anyio needs one)
            self._limiter = anyio.CapacityLimiter(self.settings.max_concurrency)
        return self._limiter

    @property
    def on_llm_error(self) -> str:
        """``fail`` when a failing tier makes the request 503, ``degrade`` otherwise."""
        return "fail" if getattr(self.cascade, "on_error", "degrade") == "raise" else "degrade"

    def budget(self, requested: int | None, param: str = "max_tokens", task: str = "squad") -> int:
        """The per-tier answer budget in tokens: the request's, else the cascade's (for the
        ``chat`` task :data:`~cascade_router.prompts.CHAT_MAX_TOKENS`, within the cap). Raises
        RequestError (naming ``param``, the request field it came from) over the cap."""
        cap = self.settings.max_tokens_cap
        if requested is None:
            if task == "chat":
                return min(CHAT_MAX_TOKENS, cap)
            return int(getattr(self.cascade, "max_tokens", 24))
        if requested > cap:
            raise RequestError(f"{param}={requested} exceeds this server's cap of {cap}",
                               param=param, code="max_tokens_exceeded")
        return int(requested)

    async def answer(self, q: Query, start: str | None, max_tokens: int, use_cache: bool = True,
                     on_text=None) -> CascadeResult | JSONResponse:
        """Run the cascade from ``start`` (a tier name, None: the first) in a worker thread
        (bounded), record metrics; an error response on failure. ``on_text``: live streaming
        (see :meth:`cascade_router.cascade.Cascade.answer`), called in the worker thread."""
        s = self.settings
        if self.pending >= s.max_concurrency + s.max_queue:
            return error_response(
                429, f"server busy: {self.pending} requests running or queued (limit "
                     f"{s.max_concurrency} running + {s.max_queue} queued); retry later",
                "rate_limit_error", None, "queue_full", headers={"Retry-After": "1"})
        self.pending += 1
        kw = {"use_cache": use_cache} if getattr(self.cascade, "cache", None) is not None else {}
        if q.conversation is not None:
            kw["conversation"] = q.conversation
        if on_text is not None:
            kw["on_text"] = on_text
        call = partial(self.cascade.answer, q.question, q.passage, task=q.task, max_tokens=max_tokens, start=start, **kw)
        try:
            res = await anyio.to_thread.run_sync(call, limiter=self.limiter)
        except ContextLengthError as e:  # the request is too long: the client's mistake, not the tier's
            return error_response(400, f"This model's maximum context length is {e.n_ctx} tokens. However, your "
                                       f"messages resulted in {e.n_tokens} tokens (tier {e.tier or 'unknown'}: {e}).",
                                  "invalid_request_error", "messages", "context_length_exceeded")
        except ModelError as e:
            tier = e.tier or "unknown"
            if getattr(e, "partial", None) is not None:  # fail mode: count what the earlier tiers spent
                self.metrics.record_result(e.partial, "started" if start is not None else "routed", answered=False)
            self.metrics.record_failure(tier, isinstance(e, TierBusyError))
            log.warning("model tier %s failed: %s", tier, e)
            return error_response(503, f"model tier {tier} unavailable: {e}", "server_error", None,
                                  "tier_unavailable", headers={"Retry-After": "5"})
        except ValueError as e:
            return error_response(400, str(e))
        except Exception as e:  # never let a request crash the server
            log.exception("cascade failed")
            return error_response(500, f"internal error: {type(e).__name__}: {e}", "server_error")
        finally:
            self.pending -= 1
        if not use_cache and getattr(self.cascade, "cache", None) is not None:
            res.cache_status = "bypass"
        self.metrics.record_result(res, "started" if start is not None else "routed")
        return res

    # -- models ----------------------------------------------------------------------------

    def model_objects(self) -> list[dict]:
        """``cascade`` and every tier, as OpenAI model objects (see the module docstring)."""
        created = int(self.started)
        out = [wire.model_object(CASCADE_MODEL, CASCADE_MODEL, [], created)]
        for name in self.tiers.names:
            out.append(wire.model_object(self.tiers.listed[name], name, self.tiers.tier_aliases(name), created))
        return out

    def model_object(self, model_id: str) -> dict | None:
        """The model object ``model_id`` selects (a listed id, a tier name, a tier's model id,
        an alias or ``cascade``), or None."""
        objs = self.model_objects()
        for o in objs:
            if o["id"] == model_id:
                return o
        tier = self.tiers.resolve(model_id)
        if tier is None:
            return None
        return objs[1 + self.tiers.names.index(tier)]


def create_app(cascade, settings: ServerSettings | None = None) -> FastAPI:
    """Build the FastAPI app serving ``cascade`` (see the module docstring for the API).

    Args:
        cascade: a :class:`~cascade_router.cascade.Cascade` (its tiers are shared by all
            requests; the caller closes it after the server stops).
        settings: limits and API keys (default :class:`ServerSettings`: no keys, 32 workers,
            64 queued, 1 MiB bodies, ``max_tokens`` cap 256).

    Returns:
        The app; run it with uvicorn. ``app.state.cascade_server`` holds the shared
        :class:`ServerState` (``metrics``, ``settings``, ``pending``, ``tiers``).
    """
    settings = settings or ServerSettings()
    state = ServerState(cascade, settings)
    app = FastAPI(title="cascade-router", version=__version__, docs_url=None, redoc_url=None)
    app.state.cascade_server = state
    app.add_middleware(Guard, state=state)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        e = errs[0] if errs else {}
        loc = [str(p) for p in e.get("loc", ()) if p != "body" and not _is_type_label(p)]
        if e.get("type") == "json_invalid":
            ctx = (e.get("ctx") or {}).get("error", "")
            return error_response(400, f"request body is not valid JSON: {ctx}".rstrip(": "), code="invalid_json")
        param = ".".join(loc) or None
        msg = f"{param}: {e.get('msg', 'invalid')}" if param else str(e.get("msg", "invalid request body"))
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more error(s))"
        return error_response(400, msg, param=param, code="invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
        type_ = "server_error" if exc.status_code >= 500 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), type_, None, code,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, f"internal error: {type(exc).__name__}", "server_error")

    def _bad(e: RequestError) -> JSONResponse:
        return error_response(400, str(e), param=e.param, code=e.code)

    async def _answered(q: Query, model_field: str | None, max_tokens: int, id_prefix: str, request: Request):
        """Answer through the cascade; ``(error_response, None)`` or ``(result, wire.Meta)``.
        ``x-cascade-cache-control: no-cache`` bypasses the semantic cache."""
        no_cache = "no-cache" in request.headers.get(CACHE_CONTROL_HEADER, "").lower()
        res = await state.answer(q, state.tiers.resolve(model_field), max_tokens, use_cache=not no_cache)
        if isinstance(res, Response):
            return res, None
        return res, wire.meta(res, q, max_tokens, id_prefix)

    async def _live(q: Query, model_field: str | None, max_tokens: int, id_prefix: str, request: Request,
                    chat: bool, include_usage: bool):
        """A streamed response (see the module docstring): starts when the tier whose answer is
        final starts streaming, or when the cascade is done, whichever comes first."""
        loop = asyncio.get_running_loop()
        texts: asyncio.Queue = asyncio.Queue()
        gone = threading.Event()  # the client went away: stop generating

        def on_text(tier: str, delta: str) -> bool:  # in the worker thread, on every token of the final tier
            if delta:
                loop.call_soon_threadsafe(texts.put_nowait, (tier, delta))
            return gone.is_set()

        no_cache = "no-cache" in request.headers.get(CACHE_CONTROL_HEADER, "").lower()
        task = asyncio.ensure_future(state.answer(q, state.tiers.resolve(model_field), max_tokens, use_cache=not no_cache,
                                                  on_text=on_text if settings.live_stream else None))
        first = asyncio.ensure_future(texts.get())
        while not (task.done() or first.done()):
            await asyncio.wait({task, first}, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
            if not gone.is_set() and await request.is_disconnected():
                gone.set()  # the client went away before any text: stop the final tier's generation
        if not first.done():  # done before any live text: the whole answer at once
            first.cancel()
            res = task.result()
            if isinstance(res, Response):
                return res
            m = wire.meta(res, q, max_tokens, id_prefix)
            events = (wire.chat_events if chat else wire.completion_events)(m, res.answer, include_usage)
            return StreamingResponse(wire.sse(events), media_type="text/event-stream",
                                     headers={**wire.headers(res), "cache-control": "no-cache"})
        tier, delta = first.result()
        m0 = wire.Meta(f"{id_prefix}-{uuid.uuid4().hex[:24]}", int(time.time()), state.tiers.model_ids[tier], {}, {}, "")

        async def events():
            sent = ""
            get = None
            try:
                if chat:
                    yield wire.sse_event(wire.chat_chunk(m0, {"role": "assistant", "content": ""}))
                pending = [delta]
                while True:
                    for d in pending:
                        if d:
                            sent += d
                            for ev in wire.content_events(m0, d, chat):
                                yield wire.sse_event(ev)
                    if task.done() and texts.empty():
                        break
                    get = asyncio.ensure_future(texts.get())
                    await asyncio.wait({get, task}, return_when=asyncio.FIRST_COMPLETED)
                    if get.done():
                        pending = [get.result()[1]]
                    else:
                        get.cancel()
                        pending = []
                    while not texts.empty():
                        pending.append(texts.get_nowait()[1])
                res = task.result()
                if isinstance(res, Response):  # the request failed after the stream started
                    yield f"data: {res.body.decode()}\n\n"
                else:
                    m = wire.meta(res, q, max_tokens, id_prefix)._replace(id=m0.id, created=m0.created, model=m0.model)
                    for ev in wire.content_events(m, remaining(sent, res.answer), chat):
                        yield wire.sse_event(ev)
                    for ev in wire.closing_events(m, chat, include_usage):
                        yield wire.sse_event(ev)
                yield wire.SSE_DONE
            finally:  # also when the client went away: stop generating, drop the pending read
                gone.set()
                if get is not None and not get.done():
                    get.cancel()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"x-cascade-route": tier, "cache-control": "no-cache"})

    def _include_usage(req) -> bool:
        return bool(req.stream_options and req.stream_options.include_usage)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        """OpenAI chat completions through the cascade (see module docstring)."""
        try:
            q = query_from_chat(req)
            if req.max_completion_tokens is not None:
                max_tokens = state.budget(req.max_completion_tokens, "max_completion_tokens", q.task)
            else:
                max_tokens = state.budget(req.max_tokens, task=q.task)
        except RequestError as e:
            return _bad(e)
        if req.stream:
            return await _live(q, req.model, max_tokens, "chatcmpl", request, True, _include_usage(req))
        res, meta = await _answered(q, req.model, max_tokens, "chatcmpl", request)
        if meta is None:
            return res
        return JSONResponse(wire.chat_body(meta, res.answer), headers=wire.headers(res))

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        """OpenAI (legacy) completions through the cascade: ``prompt`` is the question text."""
        try:
            q = query_from_prompt(req)
            max_tokens = state.budget(req.max_tokens, task=q.task)
        except RequestError as e:
            return _bad(e)
        if req.stream:
            return await _live(q, req.model, max_tokens, "cmpl", request, False, _include_usage(req))
        res, meta = await _answered(q, req.model, max_tokens, "cmpl", request)
        if meta is None:
            return res
        return JSONResponse(wire.completion_body(meta, res.answer), headers=wire.headers(res))

    @app.get("/v1/models")
    async def models():
        """The cascade and every tier, as OpenAI model objects (``cascade.tier`` says which)."""
        return {"object": "list", "data": state.model_objects()}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        """One model object (as listed by ``/v1/models``); 404 ``model_not_found`` otherwise."""
        obj = state.model_object(model_id)
        if obj is None:
            known = ", ".join(o["id"] for o in state.model_objects())
            return error_response(404, f"the model {model_id!r} does not exist; models: {known}",
                                  "invalid_request_error", "model", "model_not_found")
        return obj

    @app.get("/health")
    async def health():
        """Liveness (no model call): status, the tiers in order, running and queued requests."""
        names = state.tiers.names
        return {
            "status": "ok", "version": __version__,
            "tiers": [{"name": t.name, "model": state.tiers.model_ids[t.name],
                       "breaker": t.breaker.state if getattr(t, "breaker", None) else None} for t in cascade.tiers],
            "models": {CASCADE_MODEL: CASCADE_MODEL, **{n: state.tiers.model_ids[n] for n in names}},
            "on_llm_error": state.on_llm_error,
            "running": state.running, "queued": state.pending - state.running,
            "uptime_s": round(time.time() - state.started, 3),
        }

    @app.get("/metrics")
    async def metrics():
        """Prometheus text exposition (see :mod:`cascade_router.server.metrics`)."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    return app
