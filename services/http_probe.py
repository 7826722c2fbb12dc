"""``/healthz``, ``/readyz`` and ``/metrics`` for the services (the gateway serves its own).

A tiny WSGI app on a daemon thread: the probes must answer even while the event loop is
busy, and prometheus-client already ships the WSGI side of /metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class ProbeServer:
    """Serves probes on ``host:port`` until :meth:`stop`; ``ready()`` is read on each request."""

    def __init__(self, host: str, port: int, ready: Callable[[], tuple[bool, str]]) -> None:
        self._ready = ready
        self._metrics = make_wsgi_app()
        self._server = make_server(host, port, self._app, _Server, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probes", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start)
        if path == "/healthz":
            return _text(start, "200 OK", "ok\n")
        if path == "/readyz":
            ok, why = self._ready()
            return _text(start, "200 OK" if ok else "503 Service Unavailable", why + "\n")
        return _text(start, "404 Not Found", "not found\n")


def _text(start: Callable[..., Any], status: str, body: str) -> list[bytes]:
    data = body.encode()
    start(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
