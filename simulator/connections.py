"""One charger's WebSocket as the fleet sees it: opening it, and why it failed or closed.

:func:`open_connection` opens ``{url}/{id}`` with subprotocol ``ocpp1.6`` and the options a
fleet of thousands needs (no compression, a short receive queue, an optional local address),
over TLS when given a context (``wss://``) and with the charger's extra headers (HTTP Basic).
:func:`connect_failure_reason` and :func:`close_reason` give the short, stable texts that key
the report's connect failures and disconnects; :func:`is_definite` says which failures
retrying will not fix; :func:`security_event_for` which ones a charger logs as a security
event; :func:`backoff` is the reconnect delay.

TLS failures are named by what the charger saw: "TLS: server certificate not verified
(...)", "TLS: protocol version refused", "TLS: closed before the HTTP response" (a TLS 1.3
server that refuses the client certificate does so after the charger's side of the
handshake is done: the charger only sees the connection end), "TLS: <OpenSSL reason>".
"""

from __future__ import annotations

import random
import socket
import ssl

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus
from websockets.typing import Subprotocol

from simulator.errors import TlsSetupError

SUBPROTOCOL = Subprotocol("ocpp1.6")

#: OpenSSL reasons that mean the two sides have no TLS version in common.
_VERSION_REASONS = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "WRONG_SSL_VERSION",
        "NO_PROTOCOLS_AVAILABLE",
        "VERSION_TOO_LOW",
    }
)
CERTIFICATE_NOT_VERIFIED = "TLS: server certificate not verified"
PROTOCOL_VERSION_REFUSED = "TLS: protocol version refused"
CLOSED_BEFORE_RESPONSE = "TLS: closed before the HTTP response (client certificate refused?)"
TLS_FILES_NOT_LOADED = "TLS files not loaded"


async def open_connection(
    url: str,
    *,
    open_timeout: float,
    ping_interval: float | None,
    source: str | None,
    ssl_context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> ClientConnection:
    """Open one charger's WebSocket (the caller checks that ``ocpp1.6`` was agreed)."""
    tls = {"ssl": ssl_context} if ssl_context is not None else {}
    return await connect(
        url,
        subprotocols=[SUBPROTOCOL],
        additional_headers=headers,
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        close_timeout=2.0,
        compression=None,
        max_queue=4,
        local_addr=(source, 0) if source else None,
        **tls,
    )


def connect_failure_reason(exc: BaseException, *, tls: bool = False) -> str:
    """A short, stable reason for a failed connection attempt (the key in the report)."""
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, TlsSetupError):
        return f"{TLS_FILES_NOT_LOADED} ({exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{CERTIFICATE_NOT_VERIFIED} ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        if exc.reason in _VERSION_REASONS:
            return PROTOCOL_VERSION_REFUSED
        return f"TLS: {exc.reason or type(exc).__name__}"
    if tls and isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return CLOSED_BEFORE_RESPONSE
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "name resolution failed"
    if isinstance(exc, InvalidHandshake):
        return f"handshake failed ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def is_definite(reason: str) -> bool:
    """A failure that retrying will not fix: nothing listens, no such host, refused by HTTP 4xx,
    a TLS handshake the server or the charger refused, TLS files that cannot be loaded.

    (An EOF in the middle of a TLS handshake, say, is not: a busy server may do that.)
    """
    return (
        reason in ("connection refused", "name resolution failed")
        or reason.startswith(("HTTP 4", CERTIFICATE_NOT_VERIFIED, TLS_FILES_NOT_LOADED))
        or reason in (PROTOCOL_VERSION_REFUSED, CLOSED_BEFORE_RESPONSE)
        or (reason.startswith("TLS: ") and "ALERT" in reason)
    )


def security_event_for(reason: str) -> str | None:
    """The security event a charger logs for a failed connection (whitepaper section 8)."""
    if reason.startswith(CERTIFICATE_NOT_VERIFIED):
        return "InvalidCentralSystemCertificate"  # A00.FR.309, A00.FR.413
    if reason == PROTOCOL_VERSION_REFUSED:
        return "InvalidTLSVersion"  # A00.FR.315, A00.FR.419
    if reason == "HTTP 401":
        return "FailedToAuthenticateAtCentralSystem"
    return None


def backoff(attempt: int) -> float:
    """Seconds before reconnect ``attempt``: capped exponential, with jitter."""
    return min(30.0, 0.5 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0)


def close_reason(ws: ClientConnection) -> str:
    """Why the server side ended a connection: its close code, or a lost connection."""
    received = ws.protocol.close_rcvd  # the asyncio connection has no close_rcvd of its own
    if received is not None:
        return f"closed by server {received.code}"
    return "connection lost"


__all__ = [
    "SUBPROTOCOL",
    "TLS_FILES_NOT_LOADED",
    "backoff",
    "close_reason",
    "connect_failure_reason",
    "is_definite",
    "open_connection",
    "security_event_for",
]
