"""What is decided before the WebSocket upgrade: probes, identity, credentials, admission.

The pure parts take strings and return values, no I/O:

- :func:`station_id`          the charge point identity from the request path
- :func:`basic_password`      the password of an HTTP Basic header whose user is the station
- :func:`choose_subprotocol`  ``ocpp1.6`` if the client offers it
- :func:`forwarded_peer`      the charger's address behind trusted proxies

:class:`Handshake` is the ``process_request`` hook around them. ``/healthz``, ``/readyz``
(and ``/metrics`` only where GRIDLINK_GATEWAY_METRICS_PORT is 0) are answered here;
``/ocpp/{id}`` is admitted when the gateway is ready (else 503), the request is well-formed
(else 400: an identity outside the character set of :mod:`services.station_ids`, a
malformed request rather than an unknown station, so not 404; two Authorization headers)
and authz admits what the connection shows — Basic credentials, TLS, a client certificate
(verified by the TLS handshake, or by a trusted proxy that forwards it in a header; the
header of anyone else is ignored). A refusal
of credentials is 401 with ``WWW-Authenticate`` whatever the reason, a lockout 429 with
``Retry-After``, no answer 503, a back end too far behind (:mod:`gateway.backlog`) 503 with
``Retry-After``. A connection that meets a lower security profile than the
station's live connection here is refused (409): a weaker login never replaces a stronger
one. Every refusal is counted by reason and logged with the peer address.
A client that does not offer ``ocpp1.6`` passes the handshake without a subprotocol and is
closed right after it (1002, see :mod:`gateway.connection`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway.backlog import Backlog
from services import station_ids, tls
from services.envelope import ConnectDecision, ConnectRequest, PeerCertificate
from services.errors import BusUnavailable
from services.metrics import CONNECTIONS_TOTAL, HANDSHAKES_REFUSED
from services.settings import Settings

log = logging.getLogger("gridlink.gateway.handshake")

SUBPROTOCOL = Subprotocol("ocpp1.6")
OCPP_PATH = "/ocpp/"
WWW_AUTHENTICATE = 'Basic realm="GridLink", charset="UTF-8"'
OVERLOAD_RETRY_AFTER_S = (2, 10)  # spread, so refused chargers do not come back together


def station_id(path: str, max_length: int) -> str | None:
    """The identity in ``path``: the one segment under ``/ocpp/``, percent-decoded strictly,
    in NFC, of the character set :mod:`services.station_ids` allows.

    None (the handshake answers 400 before the upgrade) if the path is not under
    ``/ocpp/``, the segment is empty or nested, its escapes are not UTF-8, or the identity
    is longer than ``max_length`` characters or not one GridLink takes (a control or format
    character, a blank at an end, ``/``, ``#``, ...).
    """
    if not path.startswith(OCPP_PATH):
        return None
    segment = path[len(OCPP_PATH):]
    if not segment or "/" in segment:
        return None
    try:
        return station_ids.check(unquote(segment, errors="strict"), max_length)
    except (UnicodeDecodeError, station_ids.InvalidStationId):
        return None


def basic_password(authorization: str | None, station: str) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header whose user is ``station``
    (security profiles 1 and 2); None without such a header or for another user. The user
    is the whole identity, so an identity holding ``:`` still works (A00.FR.204); it is
    compared in NFC, as the identity of the URL is (the password is taken as sent)."""
    if not authorization or not authorization[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
        return None
    prefix = station + ":"
    if decoded.startswith(prefix):
        return decoded[len(prefix):]
    for at, char in enumerate(decoded):  # the user as the charger spelled it, decomposed
        if char == ":" and station_ids.normalize(decoded[:at]) == station:
            return decoded[at + 1:]
    return None


def choose_subprotocol(offered: Sequence[str]) -> Subprotocol | None:
    """``ocpp1.6`` if the client offers it, else None (no subprotocol)."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]
                       ) -> Subprotocol | None:
    """The ``select_subprotocol`` hook of ``serve()``: :func:`choose_subprotocol`."""
    return choose_subprotocol(offered)


def forwarded_peer(remote: str | None, forwarded_for: str | None,
                   proxies: Sequence[str]) -> str | None:
    """The charger's address: the nearest address in ``X-Forwarded-For`` that is not a
    trusted proxy, when the connection comes from one; else the connection's own."""
    if not forwarded_for or not tls.trusted(remote, proxies):
        return remote
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if hop and not tls.trusted(hop, proxies):
            return hop
    return remote


def refuse(connection: ServerConnection, status: HTTPStatus, reason: str, text: str, *,
           station: str | None = None, peer: str | None = None) -> Response:
    """An HTTP refusal of the handshake, counted by ``reason`` and logged with the peer."""
    HANDSHAKES_REFUSED.labels(reason).inc()
    CONNECTIONS_TOTAL.labels("refused").inc()
    if status not in (HTTPStatus.NOT_FOUND, HTTPStatus.SERVICE_UNAVAILABLE) or station:
        log.info("handshake refused", extra={"station": station, "peer": peer,
                                             "reason": reason, "status": int(status)})
    return connection.respond(status, text + "\n")


def _peer_certificate(certificate: tls.ClientCertificate) -> PeerCertificate:
    return PeerCertificate(common_name=certificate.common_name,
                           organizations=list(certificate.organizations),
                           serial=certificate.serial, fingerprint=certificate.fingerprint,
                           not_after=certificate.not_after)


class Handshake:
    """The ``process_request`` hook: answers probes, refuses or admits chargers.

    ``readiness`` and ``draining`` are read on each request; ``ask_connect`` puts the
    admission question to authz and raises :class:`BusUnavailable` if nobody answers;
    ``live_profile`` says which security profile the station's live connection here met.
    The decision of an admitted connection waits in :attr:`admitted` for its handler.
    """

    def __init__(self, settings: Settings, *, readiness: Callable[[], tuple[bool, str]],
                 draining: Callable[[], bool],
                 ask_connect: Callable[[ConnectRequest, float], Awaitable[ConnectDecision]],
                 live_profile: Callable[[str], int | None] = lambda station: None,
                 backlog: Backlog | None = None) -> None:
        self.settings = settings
        self.backlog = backlog or Backlog()
        self._readiness = readiness
        self._draining = draining
        self._ask_connect = ask_connect
        self._live_profile = live_profile
        self.admitted: weakref.WeakKeyDictionary[ServerConnection, ConnectDecision] = (
            weakref.WeakKeyDictionary())

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
        remote = _remote_address(connection)
        trusted_proxy = tls.trusted(remote, self.settings.tls_trusted_proxies)
        peer = forwarded_peer(remote, _one(request.headers, "X-Forwarded-For"),
                              self.settings.tls_trusted_proxies)
        ok, why = self._readiness()
        if not ok:
            return refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE,
                          "draining" if self._draining() else "backend_unavailable", why)
        station = station_id(path, self.settings.max_station_id_length)
        if station is None:
            return refuse(connection, HTTPStatus.BAD_REQUEST, "bad_identity",
                          "invalid charge point identity", peer=peer)
        authorizations = request.headers.get_all("Authorization")
        if len(authorizations) > 1:
            return refuse(connection, HTTPStatus.BAD_REQUEST, "bad_request",
                          "more than one Authorization header", station=station, peer=peer)
        try:
            over_tls, certificate = self._transport_security(connection, request, trusted_proxy)
        except tls.UntrustedCertificate as exc:
            log.warning("forwarded client certificate refused",
                        extra={"station": station, "peer": peer, "error": str(exc)})
            return self._unauthorized(connection, "certificate_rejected", station, peer)
        if self.backlog.size() >= self.settings.gateway_max_backlog:
            response = refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "overloaded",
                              "busy, try again later", station=station, peer=peer)
            response.headers["Retry-After"] = str(random.randint(*OVERLOAD_RETRY_AFTER_S))
            return response
        admission = ConnectRequest(
            station=station, peer=peer, tls=over_tls, certificate=certificate,
            password=basic_password(authorizations[0] if authorizations else None, station))
        self.backlog.admitting += 1
        try:
            decision = await self._ask_connect(admission, self.settings.connect_timeout_s)
        except BusUnavailable:
            return refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "backend_unavailable",
                          "try again later", station=station, peer=peer)
        finally:
            self.backlog.admitting -= 1
        if not decision.accept:
            return self._refused(connection, decision, station, peer)
        live = self._live_profile(station)
        if live is not None and (decision.profile or 0) < live:
            return refuse(connection, HTTPStatus.CONFLICT, "weaker_than_live",
                          "the station is connected with a stronger security profile",
                          station=station, peer=peer)
        self.admitted[connection] = decision
        return None

    def _transport_security(self, connection: ServerConnection, request: Request,
                            trusted_proxy: bool) -> tuple[bool, PeerCertificate | None]:
        """Over TLS? With which verified client certificate? From the TLS connection
        itself, or from the headers of a trusted proxy that ended TLS."""
        ssl_object = connection.transport.get_extra_info("ssl_object") if (
            connection.transport is not None) else None
        if ssl_object is not None:
            certificate = tls.peer_certificate(ssl_object)
            return True, _peer_certificate(certificate) if certificate else None
        if not trusted_proxy:
            return False, None  # forwarded headers of anyone else mean nothing
        proto = (_one(request.headers, "X-Forwarded-Proto") or "").lower()
        over_tls = proto in ("https", "wss")
        forwarded = _one(request.headers, self.settings.tls_client_cert_header)
        if not over_tls or not forwarded:
            return over_tls, None
        return True, _peer_certificate(tls.certificate_from_header(
            forwarded, self.settings.tls_client_ca_file))

    def _refused(self, connection: ServerConnection, decision: ConnectDecision,
                 station: str, peer: str | None) -> Response:
        if decision.status == HTTPStatus.TOO_MANY_REQUESTS:
            response = refuse(connection, HTTPStatus.TOO_MANY_REQUESTS, decision.reason,
                              "too many failed logins, try again later", station=station,
                              peer=peer)
            response.headers["Retry-After"] = str(decision.retry_after or 60)
            return response
        if decision.status == HTTPStatus.UNAUTHORIZED:
            return self._unauthorized(connection, decision.reason, station, peer)
        return refuse(connection, HTTPStatus(decision.status), decision.reason,
                      decision.reason.replace("_", " "), station=station, peer=peer)

    def _unauthorized(self, connection: ServerConnection, reason: str, station: str,
                      peer: str | None) -> Response:
        """The one refusal of credentials (the reason is only counted and logged)."""
        response = refuse(connection, HTTPStatus.UNAUTHORIZED, reason, "unauthorized",
                          station=station, peer=peer)
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        return response


def _remote_address(connection: ServerConnection) -> str | None:
    address = connection.remote_address
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None


def _one(headers: Headers, name: str) -> str | None:
    """A header that must appear at most once (several: the last, as proxies append)."""
    values = headers.get_all(name)
    return values[-1] if values else None
