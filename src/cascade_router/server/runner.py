"""Run an app with uvicorn in a background thread (tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0 picks a free one), for uvicorn to serve on.

    ``host`` may be a name or an IPv4/IPv6 address (resolved with ``getaddrinfo``).

    Raises:
        socket.gaierror: ``host`` does not resolve. OSError: the address cannot be bound.
    """
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


class BackgroundServer:
    """uvicorn serving ``app`` from a daemon thread on a socket bound before start.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with BackgroundServer(create_app(cascade)) as srv:
            httpx.get(srv.url + "/health")

    Args:
        app: an ASGI app.
        host: address to bind (default loopback).
        port: port to bind; 0 (default) picks a free one (see :attr:`port` after start).
        log_level: uvicorn's log level.

    Raises (from :meth:`start`):
        OSError: the address cannot be bound. RuntimeError: uvicorn did not start in ``timeout_s``.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> "BackgroundServer":
        """Bind, start uvicorn in a thread and wait until it accepts requests (seconds)."""
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(self.app, log_level=self.log_level, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread (seconds); safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
