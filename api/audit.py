"""Every request, audited and traced: the ASGI middleware around the whole API.

- ``X-Request-ID``: taken from the request when it is 1-128 characters of
  ``[A-Za-z0-9._:-]``, else a new one; on ``request.state.request_id``, echoed in the
  response, in the log line of the request and in its audit record.
- The audit record of every request to ``/api/`` (collection ``api_audit``, kept
  GRIDLINK_RETENTION_API_AUDIT_DAYS: a TTL index, :mod:`services.retention`): ``{key_id,
  method, route (the template, never the path with its ids), status, request_id, at,
  peer}``. Pages and static files (docs, console) are not audited, only counted.
- ``gridlink_api_requests_total`` and ``gridlink_api_request_seconds`` by route template.

Probes (``/healthz``, ``/readyz``) are neither audited nor counted.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import AUDIT_FAILURES, REQUEST_SECONDS, REQUESTS
from services.clock import utcnow
from services.retention import Retention
from services.settings import Settings

log = logging.getLogger("gridlink.api.requests")

COLLECTION = "api_audit"
HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PROBES = ("/healthz", "/readyz")
AUDITED = "/api/"


def retention(settings: Settings) -> Retention:
    return Retention(COLLECTION, "at", settings.retention_api_audit_days)


def request_id_from(value: str | None) -> str:
    """The request's own id if it is sane, else a new one."""
    if value and _REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: list[tuple[str, re.Pattern[str], str]] | None = None

    def template(self, app: Any, method: str, path: str) -> str:
        """The route template of a request (``/api/v1/stations/{station}``), from the
        application's OpenAPI paths; ``(other)`` for what the spec does not list."""
        if self._templates is None:
            if app is None or not hasattr(app, "openapi"):
                return "(other)"
            self._templates = [
                (verb.upper(), re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+",
                                                       re.escape(template)) + "$"), template)
                for template, operations in app.openapi().get("paths", {}).items()
                for verb in operations]
        for verb, pattern, template in self._templates:
            if (verb == method or (method == "HEAD" and verb == "GET")) and pattern.match(path):
                return template
        return "(other)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        request_id = request_id_from(headers.get(HEADER))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = [500]
        started = time.monotonic()
        too_large = self._too_large(scope, headers.get("content-length"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if too_large:
                await _discard_body(receive)
                await _problem(send_with_id, 413, too_large, request_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            await self._record(scope, state, request_id, status[0],
                               time.monotonic() - started)

    @staticmethod
    def _too_large(scope: Scope, length: str | None) -> str | None:
        """Why the declared body is refused (no body is larger than a charger frame may
        be: GRIDLINK_MAX_FRAME_BYTES), or None. Such a body is read and dropped, never
        parsed or kept."""
        if length is None:
            return None
        context = getattr(getattr(scope.get("app"), "state", None), "context", None)
        limit = context.settings.max_frame_bytes if context is not None else 1 << 20
        if not length.isdigit():
            return "Content-Length is not a number"
        if int(length) > limit:
            return f"the body is larger than {limit} bytes (GRIDLINK_MAX_FRAME_BYTES)"
        return None

    async def _record(self, scope: Scope, state: dict[str, Any], request_id: str,
                      status: int, seconds: float) -> None:
        path = scope.get("path", "")
        if path in _PROBES:
            return
        method = scope.get("method", "")
        route = self.template(scope.get("app"), method, path)
        REQUESTS.labels(route, method, str(status)).inc()
        REQUEST_SECONDS.labels(route).observe(seconds)
        client = scope.get("client")
        record = {"key_id": state.get("key_id"), "method": method, "route": route,
                  "status": status, "request_id": request_id, "at": utcnow(),
                  "peer": client[0] if client else None}
        log.info("request", extra={k: v for k, v in record.items() if k != "at"})
        if not path.startswith(AUDITED):
            return
        context = getattr(scope.get("app"), "state", None)
        ctx = getattr(context, "context", None)
        if ctx is None:
            return
        try:
            await ctx.db[COLLECTION].insert_one(record)
        except Exception as exc:
            AUDIT_FAILURES.inc()
            log.error("audit record not written", extra={**record, "error": str(exc)})


async def _discard_body(receive: Receive, most: int = 64 << 20) -> None:
    """Read and drop the body (never kept: a client still sending it would otherwise see
    the connection reset instead of the answer), up to ``most`` bytes."""
    seen = 0
    while seen <= most:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
        seen += len(message.get("body", b""))


async def _problem(send: Send, status: int, detail: str, request_id: str) -> None:
    body = json.dumps({"type": "about:blank", "title": "Content Too Large", "status": status,
                       "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
