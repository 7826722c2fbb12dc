"""What is decided before the WebSocket upgrade: probes, identity, password, admission.

The pure parts take strings and return values, no I/O:

- :func:`station_id`          the charge point identity from the request path
- :func:`basic_password`      the password of an HTTP Basic header whose user is the station
- :func:`choose_subprotocol`  ``ocpp1.6`` if the client offers it

:class:`Handshake` is the ``process_request`` hook around them. ``/healthz``, ``/readyz``
and ``/metrics`` are answered here; ``/ocpp/{id}`` is admitted when the gateway is ready
(else 503), the identity is well-formed (else 400) and authz admits it (404 unknown, 401 bad
password with ``WWW-Authenticate``; no answer: 503). Every refusal is counted by reason.
A client that does not offer ``ocpp1.6`` passes the handshake without a subprotocol and is
closed right after it (1002, see :mod:`gateway.connection`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from services.envelope import ConnectDecision, ConnectRequest
from services.errors import BusUnavailable
from services.metrics import CONNECTIONS_TOTAL, HANDSHAKES_REFUSED
from services.settings import Settings

SUBPROTOCOL = Subprotocol("ocpp1.6")
OCPP_PATH = "/ocpp/"
WWW_AUTHENTICATE = 'Basic realm="GridLink", charset="UTF-8"'


def station_id(path: str, max_length: int) -> str | None:
    """The identity in ``path``: the one segment under ``/ocpp/``, percent-decoded strictly.

    None if the path is not under ``/ocpp/``, the segment is empty or nested, its escapes
    are not UTF-8, the identity is longer than ``max_length`` characters or holds a control
    character, ``/``, ``\\`` or ``#``.
    """
    if not path.startswith(OCPP_PATH):
        return None
    segment = path[len(OCPP_PATH):]
    if not segment or "/" in segment:
        return None
    try:
        station = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None
    if not station or len(station) > max_length:
        return None
    if any(ord(ch) < 0x20 or ch in "/\\#" for ch in station):
        return None
    return station


def basic_password(authorization: str | None, station: str) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header whose user is ``station``
    (security profiles 1 and 2); None without such a header or for another user."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password if user == station else None


def choose_subprotocol(offered: Sequence[str]) -> Subprotocol | None:
    """``ocpp1.6`` if the client offers it, else None (no subprotocol)."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]
                       ) -> Subprotocol | None:
    """The ``select_subprotocol`` hook of ``serve()``: :func:`choose_subprotocol`."""
    return choose_subprotocol(offered)


def refuse(connection: ServerConnection, status: HTTPStatus, reason: str, text: str
           ) -> Response:
    """An HTTP refusal of the handshake, counted by ``reason``."""
    HANDSHAKES_REFUSED.labels(reason).inc()
    CONNECTIONS_TOTAL.labels("refused").inc()
    return connection.respond(status, text + "\n")


class Handshake:
    """The ``process_request`` hook: answers probes, refuses or admits chargers.

    ``readiness`` and ``draining`` are read on each request; ``ask_connect`` puts the
    admission question to authz and raises :class:`BusUnavailable` if nobody answers.
    """

    def __init__(self, settings: Settings, *, readiness: Callable[[], tuple[bool, str]],
                 draining: Callable[[], bool],
                 ask_connect: Callable[[ConnectRequest, float], Awaitable[ConnectDecision]]
                 ) -> None:
        self.settings = settings
        self._readiness = readiness
        self._draining = draining
        self._ask_connect = ask_connect

    async def process_request(self, connection: ServerConnection, request: Request
                              ) -> Response | None:
        """A response that ends the handshake here, or None to go on with the upgrade."""
        path = urlsplit(request.path).path
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            ok, why = self._readiness()
            return connection.respond(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                                      why + "\n")
        if path == "/metrics" and not self.settings.gateway_probe_port:
            body = generate_latest()
            return Response(200, "OK", Headers([("Content-Type", CONTENT_TYPE_LATEST),
                                                ("Content-Length", str(len(body)))]), body)
        if not path.startswith(OCPP_PATH):
            return refuse(connection, HTTPStatus.NOT_FOUND, "not_found", "not found")
        ok, why = self._readiness()
        if not ok:
            return refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE,
                          "draining" if self._draining() else "backend_unavailable", why)
        station = station_id(path, self.settings.max_station_id_length)
        if station is None:
            return refuse(connection, HTTPStatus.BAD_REQUEST, "bad_identity",
                          "invalid charge point identity")
        admission = ConnectRequest(
            station=station, password=basic_password(request.headers.get("Authorization"),
                                                     station))
        try:
            decision = await self._ask_connect(admission, self.settings.connect_timeout_s)
        except BusUnavailable:
            return refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "backend_unavailable",
                          "try again later")
        if not decision.accept:
            response = refuse(connection, HTTPStatus(decision.status), decision.reason,
                              decision.reason)
            if decision.status == HTTPStatus.UNAUTHORIZED:
                response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
            return response
        return None
