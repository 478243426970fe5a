"""``cascade-router serve``: an OpenAI-compatible HTTP server that routes every request through
the N-tier cascade.

Modules: :mod:`.app` (the FastAPI routes and shared state, :func:`create_app`), :mod:`.wire`
(the OpenAI wire format: bodies, streamed events, errors, the ``cascade`` extension object),
:mod:`.guard` (API keys, body bound, per-request metrics), :mod:`.schemas` (request schemas and
the passage convention), :mod:`.metrics` (Prometheus), :mod:`.runner` (:class:`BackgroundServer`).
"""

from .app import ServerSettings, create_app
from .guard import is_loopback, load_api_keys
from .runner import BackgroundServer
from .schemas import Query, query_from_chat, query_from_prompt, split_question
from .wire import error_body, error_response

__all__ = [
    "ServerSettings", "create_app", "error_body", "error_response", "is_loopback", "load_api_keys",
    "BackgroundServer", "Query", "query_from_chat", "query_from_prompt", "split_question",
]
