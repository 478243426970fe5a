"""The ASGI guard in front of every route: API-key check, request-body bound, per-request metrics.

* API keys: when the server has keys, every path but :data:`OPEN_PATHS` needs
  ``Authorization: Bearer KEY`` (compared in constant time); otherwise 401 ``invalid_api_key``
  with ``WWW-Authenticate: Bearer``.
* Body bound: a ``Content-Length`` over ``max_body_bytes`` gets 413 ``request_too_large`` before
  the body is read; a chunked body is counted as it arrives and stopped at the bound (413).
* Metrics: ``cascade_requests_total{endpoint, status}`` and
  ``cascade_request_latency_seconds{endpoint}`` for every request, the guard's own answers
  included; ``endpoint`` is the route template (unknown paths are ``other``), so the labels stay
  few whatever clients send.

Also here: :func:`is_loopback` and :func:`load_api_keys`, what ``serve`` uses to decide whether a
bind is safe and which keys to accept.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import time
from typing import Iterable, Protocol

from fastapi import HTTPException

from .metrics import ServerMetrics
from .wire import error_body

#: Paths answered without an API key even when keys are configured (liveness probes).
OPEN_PATHS = frozenset({"/health"})

#: Metric ``endpoint`` labels of the known routes; everything else is ``other``.
ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"})

#: The ``endpoint`` label of ``GET /v1/models/{model_id}``.
MODEL_ENDPOINT = "/v1/models/{model_id}"


def endpoint_label(path: str) -> str:
    """The metrics label of a request path (a route template, or ``other``)."""
    if path in ENDPOINTS:
        return path
    if path.startswith("/v1/models/"):
        return MODEL_ENDPOINT
    return "other"


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


class GuardedState(Protocol):
    """What the guard reads from the server's shared state."""

    settings: "object"  # ServerSettings: api_keys, max_body_bytes
    metrics: ServerMetrics


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the bound (the app answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class Guard:
    """ASGI middleware: API-key check, body-size bound, and per-request metrics.

    Args:
        app: the ASGI app behind it.
        state: the server's shared state (``settings.api_keys``, ``settings.max_body_bytes``,
            ``metrics``).
    """

    def __init__(self, app, state: GuardedState) -> None:
        self.app = app
        self.state = state

    @staticmethod
    async def _send_error(send, status: int, body: dict, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
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
        endpoint = endpoint_label(path)
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
                    raise BodyTooLarge(limit)
            return msg

        await self.app(scope, receive_, send_)
