"""The OpenAI-compatible HTTP API in front of a :class:`~cascade_router.cascade.Cascade`.

Endpoints:

* ``POST /v1/chat/completions``: the cascade answers the last user message (passage convention:
  :mod:`cascade_router.server.schemas`). ``stream: true`` sends OpenAI ``chat.completion.chunk``
  server-sent events; the routing decision and the answer are computed first, then streamed in
  word-sized pieces.
* ``POST /v1/completions``: the same for a ``prompt`` string (``text_completion`` objects).
* ``GET /v1/models``: ``cascade`` and each tier; ``GET /health``; ``GET /metrics`` (Prometheus).

The ``model`` field: ``"slm"`` / ``"llm"`` or a tier's model name answers with that tier alone
(no routing, no fallback: a failing tier gives 503); ``"cascade"``, an absent model or any
other name routes through the cascade. Responses name the tier that answered in ``model`` and in
the ``x-cascade-route`` header (``slm``/``llm``), carry a ``cascade`` object (route, escalated,
degraded, signals, decision score and threshold, per-tier tokens and latency, cost) and a
``usage`` that sums the tokens of every tier that ran.

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 bad JSON,
schema or values (``max_tokens`` over the cap); 401 missing or wrong API key; 404/405 unknown
route or method; 413 body over the size bound; 429 more requests waiting than the queue bound;
503 a model tier failed (the SLM, a forced tier, or the LLM with ``on_llm_error = "fail"``);
500 anything unexpected. The server keeps serving after every one of them.

Concurrency: the event loop never runs a model. Cascade calls run in worker threads, at most
``max_concurrency`` at a time; up to ``max_queue`` more requests wait for a thread; beyond that
requests get 429 at once.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import logging
import math
import numbers
import os
import re
import time
import uuid
from functools import partial
from typing import Any, Iterable, NamedTuple

import anyio
import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..cascade import CascadeResult
from ..models.base import ModelError
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

log = logging.getLogger(__name__)

#: Paths answered without an API key even when keys are configured (liveness probes).
OPEN_PATHS = frozenset({"/health"})
_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"})


@dataclasses.dataclass
class ServerSettings:
    """Limits and security of one server.

    Attributes:
        api_keys: accepted Bearer keys; empty = no authentication (loopback use only).
        max_concurrency: cascade calls running at once in worker threads (>= 1).
        max_queue: admitted requests that may wait for a worker beyond those (>= 0); more get 429.
        max_body_bytes: request body bound in bytes (default 1 MiB); larger bodies get 413.
        max_tokens_cap: largest ``max_tokens`` a request may ask for (per tier, tokens); more
            gets 400. Requests without ``max_tokens`` use the cascade's configured budget.

    Raises:
        ValueError: a bound out of range.
    """

    api_keys: tuple[str, ...] = ()
    max_concurrency: int = 4
    max_queue: int = 64
    max_body_bytes: int = 1 << 20
    max_tokens_cap: int = 256

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


def is_loopback(host: str) -> bool:
    """True when ``host`` is ``localhost`` or a loopback IP (127.0.0.0/8, ::1); names and
    wildcard addresses such as ``0.0.0.0`` are not loopback."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_api_keys(env_name: str) -> tuple[str, ...]:
    """API keys from the environment variable named ``env_name`` (comma-separated for several).

    Raises:
        ValueError: the variable is unset or holds no key (the message names the variable,
            never its value).
    """
    raw = os.environ.get(env_name, "")
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ValueError(f"environment variable {env_name} is unset or empty; put the API key(s) in it")
    return keys


def _is_type_label(part) -> bool:
    """True for the union-member labels pydantic adds to an error's location (``str``,
    ``list[ContentPart]``, ``function-after[...]``): not request fields, left out of ``param``."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "list", "dict", "none")
                                      or "[" in part or part.startswith(("function-", "is-instance")))


class _Meta(NamedTuple):
    """What a chat and a completions response share for one routed question."""

    id: str
    created: int  # unix seconds
    model: str  # the tier model that answered
    usage: dict
    cascade: dict  # the ``cascade`` extension object
    finish_reason: str


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error object ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict | None = None) -> JSONResponse:
    """A JSON error response with OpenAI's error object and HTTP ``status``."""
    return JSONResponse(error_body(message, type_, param, code), status_code=status, headers=headers)


def _jsonable(x: Any) -> Any:
    """``x`` with non-finite floats as None and numpy scalars as Python numbers."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f if math.isfinite(f) else None


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class _Guard:
    """ASGI middleware: API-key check, body-size bound, and per-request metrics."""

    def __init__(self, app, state: "_State") -> None:
        self.app = app
        self.state = state

    async def _send_error(self, send, status: int, body: dict, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        data = json.dumps(body).encode()
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                        *headers],
        })
        await send({"type": "http.response.body", "body": data})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        path = scope.get("path", "")
        endpoint = path if path in _ENDPOINTS else "other"
        t0 = time.perf_counter()
        seen = {"status": None}

        async def send_(msg) -> None:
            if msg["type"] == "http.response.start" and seen["status"] is None:
                seen["status"] = msg["status"]
                st.metrics.requests.labels(endpoint, str(msg["status"])).inc()
                st.metrics.request_latency.labels(endpoint).observe(time.perf_counter() - t0)
            await send(msg)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if st.settings.api_keys and path not in OPEN_PATHS:
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            ok = scheme.lower() == "bearer" and token and any(
                hmac.compare_digest(token.encode(), k.encode()) for k in st.settings.api_keys
            )
            if not ok:
                msg = "missing API key: send 'Authorization: Bearer KEY'" if not auth else "invalid API key"
                await self._send_error(send_, 401, error_body(msg, "invalid_request_error", None, "invalid_api_key"),
                                       [(b"www-authenticate", b"Bearer")])
                return
        limit = st.settings.max_body_bytes
        cl = headers.get("content-length")
        if cl is not None:
            try:
                too_big = int(cl) > limit
            except ValueError:
                await self._send_error(send_, 400, error_body("bad Content-Length header"))
                return
            if too_big:
                await self._send_error(send_, 413, error_body(
                    f"request body exceeds the limit of {limit} bytes", "invalid_request_error", None,
                    "request_too_large"))
                return
        total = 0

        async def receive_():
            nonlocal total
            msg = await receive()
            if msg["type"] == "http.request":
                total += len(msg.get("body", b""))
                if total > limit:
                    raise _BodyTooLarge(limit)
            return msg

        await self.app(scope, receive_, send_)


class _State:
    """What the routes share: the cascade, settings, metrics and the admission counters."""

    def __init__(self, cascade, settings: ServerSettings) -> None:
        self.cascade = cascade
        self.settings = settings
        self.slm_id = str(getattr(cascade.slm, "model_id", "slm"))
        self.llm_id = str(getattr(cascade.llm, "model_id", "llm"))
        self.pending = 0  # admitted cascade requests: running + waiting (event-loop thread only)
        self._limiter: anyio.CapacityLimiter | None = None
        self.started = time.time()
        self.metrics = ServerMetrics(in_flight=lambda: self.running, queued=lambda: self.pending - self.running)

    @property
    def running(self) -> int:
        """Cascade calls holding a worker thread now."""
        return int(self._limiter.borrowed_tokens) if self._limiter is not None else 0

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created inside the event loop (anyio needs one)
            self._limiter = anyio.CapacityLimiter(self.settings.max_concurrency)
        return self._limiter

    def force_for(self, model: str | None) -> str | None:
        """``"slm"``/``"llm"`` when ``model`` names a tier, else None (route)."""
        if not model or model == CASCADE_MODEL:
            return None
        if model in ("slm", self.slm_id):
            return "slm"
        if model in ("llm", self.llm_id):
            return "llm"
        return None

    def budget(self, requested: int | None, param: str = "max_tokens") -> int:
        """The per-tier answer budget in tokens. Raises RequestError (naming ``param``, the
        request field it came from) over the cap."""
        cap = self.settings.max_tokens_cap
        if requested is None:
            return int(getattr(self.cascade, "max_tokens", 24))
        if requested > cap:
            raise RequestError(f"{param}={requested} exceeds this server's cap of {cap}",
                               param=param, code="max_tokens_exceeded")
        return int(requested)

    def _answer_sync(self, q: Query, force: str | None, max_tokens: int) -> CascadeResult:
        c = self.cascade
        if dataclasses.is_dataclass(c) and getattr(c, "max_tokens", max_tokens) != max_tokens:
            c = dataclasses.replace(c, max_tokens=max_tokens)  # shares the backends; thread-safe
        return c.answer(q.question, q.passage, task=q.task, force=force)

    def _failed_tier(self, e: ModelError, force: str | None) -> str:
        if force:
            return force
        msg = str(e)
        if self.slm_id != self.llm_id and msg.startswith(self.llm_id):
            return "llm"
        return "slm"

    async def answer(self, q: Query, force: str | None, max_tokens: int) -> CascadeResult | JSONResponse:
        """Run the cascade in a worker thread (bounded), record metrics; an error response on failure."""
        s = self.settings
        if self.pending >= s.max_concurrency + s.max_queue:
            return error_response(
                429, f"server busy: {self.pending} requests running or queued (limit "
                     f"{s.max_concurrency} running + {s.max_queue} queued); retry later",
                "rate_limit_error", None, "queue_full", headers={"Retry-After": "1"})
        self.pending += 1
        try:
            res = await anyio.to_thread.run_sync(partial(self._answer_sync, q, force, max_tokens),
                                                 limiter=self.limiter)
        except ModelError as e:
            tier = self._failed_tier(e, force)
            self.metrics.tier_calls.labels(tier, "error").inc()
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
        self._record(res, force)
        return res

    def _record(self, res: CascadeResult, force: str | None) -> None:
        m = self.metrics
        if force != "llm":
            m.record_tier("slm", res.slm)
        if res.llm is not None:
            m.record_tier("llm", res.llm)
        if force is None and res.escalated:
            m.escalations.inc()
        if res.degraded:
            m.degraded.inc()
            m.tier_calls.labels("llm", "error").inc()
        m.answers.labels(res.route, "forced" if force else "routed").inc()
        m.cost.inc(max(0.0, float(res.cost_usd)))

    # -- response pieces -------------------------------------------------------------------

    def tier_model(self, res: CascadeResult) -> str:
        """The model name of the tier whose answer is final."""
        return self.llm_id if res.route == "llm" else self.slm_id

    @staticmethod
    def usage(res: CascadeResult, force: str | None) -> dict:
        """OpenAI ``usage``: tokens summed over every tier that ran."""
        gens = [g for g in ((res.slm if force != "llm" else None), res.llm) if g is not None]
        p = sum(int(g.prompt_tokens) for g in gens)
        c = sum(int(g.completion_tokens) for g in gens)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    @staticmethod
    def finish_reason(res: CascadeResult) -> str:
        gen = res.llm if res.route == "llm" and res.llm is not None else res.slm
        return gen.finish_reason if gen.finish_reason in ("stop", "length") else "stop"

    def extension(self, res: CascadeResult, q: Query, force: str | None, max_tokens: int) -> dict:
        """The ``cascade`` object: routing decision, per-tier usage and latency (seconds), cost (USD)."""

        def tier(name: str, gen, ran: bool, answer) -> dict:
            d = {"model": self.slm_id if name == "slm" else self.llm_id, "ran": ran}
            if ran and gen is not None:
                d.update(answer=answer, prompt_tokens=int(gen.prompt_tokens),
                         completion_tokens=int(gen.completion_tokens),
                         cached_prompt_tokens=gen.cached_prompt_tokens, latency_s=gen.latency_s,
                         finish_reason=gen.finish_reason, truncated_context=gen.truncated_context)
            return d

        return _jsonable({
            "route": res.route,
            "escalated": res.escalated,
            "degraded": res.degraded,
            "error": res.error,
            "forced": force,
            "task": q.task,
            "question": q.question,
            "passage_chars": len(q.passage or ""),
            "max_tokens": max_tokens,
            "signals": dict(res.signals),
            "decision_score": res.decision_score,
            "threshold": res.threshold,
            "reasons": [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else str(r) for r in res.reasons],
            "tiers": {
                "slm": tier("slm", res.slm, force != "llm", res.slm_answer),
                "llm": tier("llm", res.llm, res.llm is not None, res.llm_answer),
            },
            "cost_usd": res.cost_usd,
            "latency_s": res.latency_s,
        })

    def headers(self, res: CascadeResult) -> dict:
        """``x-cascade-route`` (and ``x-cascade-degraded`` when the LLM failed)."""
        h = {"x-cascade-route": res.route}
        if res.degraded:
            h["x-cascade-degraded"] = "true"
        return h


def _pieces(text: str) -> list[str]:
    """``text`` cut into word-sized pieces whose concatenation is ``text``."""
    return re.findall(r"\s*\S+\s*|\s+", text) or []


def _sse(events: list[dict]):
    """An async iterator of server-sent events: one ``data:`` line per event, then ``[DONE]``."""

    async def gen():
        for ev in events:
            yield f"data: {json.dumps(ev)}\n\n"
        yield "data: [DONE]\n\n"

    return gen()


def create_app(cascade, settings: ServerSettings | None = None) -> FastAPI:
    """Build the FastAPI app serving ``cascade`` (see the module docstring for the API).

    Args:
        cascade: a :class:`~cascade_router.cascade.Cascade` (its tiers are shared by all
            requests; the caller closes it after the server stops).
        settings: limits and API keys (default :class:`ServerSettings`: no keys, 4 workers,
            64 queued, 1 MiB bodies, ``max_tokens`` cap 256).

    Returns:
        The app; run it with uvicorn. ``app.state.cascade_server`` holds the shared state
        (``metrics``, ``settings``, ``pending``).
    """
    settings = settings or ServerSettings()
    state = _State(cascade, settings)
    app = FastAPI(title="cascade-router", version=__version__, docs_url=None, redoc_url=None)
    app.state.cascade_server = state
    app.add_middleware(_Guard, state=state)

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

    async def _routed(q, model_field, max_tokens: int, id_prefix: str):
        """Answer through the cascade; returns ``(error_response, None)`` or ``(result, meta)``,
        where ``meta`` (:class:`_Meta`) holds the fields both endpoints' responses share."""
        force = state.force_for(model_field)
        res = await state.answer(q, force, max_tokens)
        if isinstance(res, Response):
            return res, None
        return res, _Meta(f"{id_prefix}-{uuid.uuid4().hex[:24]}", int(time.time()), state.tier_model(res),
                          state.usage(res, force), state.extension(res, q, force, max_tokens),
                          state.finish_reason(res))

    def _stream(events: list, res, meta: "_Meta", include_usage: bool, base: dict) -> StreamingResponse:
        if include_usage:
            events.append({**base, "choices": [], "usage": meta.usage})
        return StreamingResponse(_sse(events), media_type="text/event-stream",
                                 headers={**state.headers(res), "cache-control": "no-cache"})

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest):
        """OpenAI chat completions through the cascade (see module docstring)."""
        try:
            q = query_from_chat(req)
            if req.max_completion_tokens is not None:
                max_tokens = state.budget(req.max_completion_tokens, "max_completion_tokens")
            else:
                max_tokens = state.budget(req.max_tokens)
        except RequestError as e:
            return _bad(e)
        res, meta = await _routed(q, req.model, max_tokens, "chatcmpl")
        if meta is None:
            return res
        cid, created, model, usage, ext, fr = meta
        if not req.stream:
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": res.answer},
                             "logprobs": None, "finish_reason": fr}],
                "usage": usage, "system_fingerprint": None, "cascade": ext,
            }, headers=state.headers(res))
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": None}
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "logprobs": None, "finish_reason": None}]}]
        for piece in _pieces(res.answer):
            events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                                 "finish_reason": None}]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": fr}],
                       "cascade": ext})
        return _stream(events, res, meta, bool(req.stream_options and req.stream_options.include_usage), base)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        """OpenAI (legacy) completions through the cascade: ``prompt`` is the question text."""
        try:
            q = query_from_prompt(req)
            max_tokens = state.budget(req.max_tokens)
        except RequestError as e:
            return _bad(e)
        res, meta = await _routed(q, req.model, max_tokens, "cmpl")
        if meta is None:
            return res
        cid, created, model, usage, ext, fr = meta
        if not req.stream:
            return JSONResponse({
                "id": cid, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": res.answer, "logprobs": None, "finish_reason": fr}],
                "usage": usage, "cascade": ext,
            }, headers=state.headers(res))
        base = {"id": cid, "object": "text_completion", "created": created, "model": model}
        events = [{**base, "choices": [{"index": 0, "text": p, "logprobs": None, "finish_reason": None}]}
                  for p in _pieces(res.answer)]
        events.append({**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": fr}],
                       "cascade": ext})
        return _stream(events, res, meta, bool(req.stream_options and req.stream_options.include_usage), base)

    @app.get("/v1/models")
    async def models():
        """The cascade and each tier, as OpenAI model objects (``cascade.tier`` says which)."""
        created = int(state.started)

        def obj(mid: str, tier: str, aliases: list[str]) -> dict:
            return {"id": mid, "object": "model", "created": created, "owned_by": "cascade-router",
                    "cascade": {"tier": tier, "aliases": aliases}}

        return {"object": "list", "data": [
            obj(CASCADE_MODEL, "cascade", []),
            obj(state.slm_id, "slm", ["slm"]),
            obj(state.llm_id, "llm", ["llm"]),
        ]}

    @app.get("/health")
    async def health():
        """Liveness (no model call): status, tier names, running and queued requests."""
        return {
            "status": "ok", "version": __version__,
            "models": {"cascade": CASCADE_MODEL, "slm": state.slm_id, "llm": state.llm_id},
            "on_llm_error": "fail" if getattr(cascade, "on_llm_error", "degrade") == "raise" else "degrade",
            "running": state.running, "queued": state.pending - state.running,
            "uptime_s": round(time.time() - state.started, 3),
        }

    @app.get("/metrics")
    async def metrics():
        """Prometheus text exposition (see :mod:`cascade_router.server.metrics`)."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    return app
