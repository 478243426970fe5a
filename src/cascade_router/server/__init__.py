"""``cascade-router serve``: an OpenAI-compatible HTTP server that routes every request through
the cascade (FastAPI app in :mod:`.app`, request schemas and the passage convention in
:mod:`.schemas`, Prometheus metrics in :mod:`.metrics`)."""

from .app import ServerSettings, create_app, error_body, is_loopback, load_api_keys
from .schemas import Query, query_from_chat, query_from_prompt, split_question

__all__ = [
    "ServerSettings", "create_app", "error_body", "is_loopback", "load_api_keys",
    "Query", "query_from_chat", "query_from_prompt", "split_question",
]
