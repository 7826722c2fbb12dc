"""One charger's WebSocket as the fleet sees it: opening it, and why it failed or closed.

:func:`open_connection` opens ``{url}/{id}`` with subprotocol ``ocpp1.6`` and the options a
fleet of thousands needs (no compression, a short receive queue, an optional local address).
:func:`connect_failure_reason` and :func:`close_reason` give the short, stable texts that key
the report's connect failures and disconnects; :func:`is_definite` says which failures
retrying will not fix; :func:`backoff` is the reconnect delay.
"""

from __future__ import annotations

import random
import socket

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("ocpp1.6")


async def open_connection(
    url: str,
    *,
    open_timeout: float,
    ping_interval: float | None,
    source: str | None,
) -> ClientConnection:
    """Open one charger's WebSocket (the caller checks that ``ocpp1.6`` was agreed)."""
    return await connect(
        url,
        subprotocols=[SUBPROTOCOL],
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        close_timeout=2.0,
        compression=None,
        max_queue=4,
        local_addr=(source, 0) if source else None,
    )


def connect_failure_reason(exc: BaseException) -> str:
    """A short, stable reason for a failed connection attempt (the key in the report)."""
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
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
    """A failure that retrying will not fix: nothing listens, no such host, refused by HTTP 4xx."""
    return reason in ("connection refused", "name resolution failed") or reason.startswith("HTTP 4")


def backoff(attempt: int) -> float:
    """Seconds before reconnect ``attempt``: capped exponential, with jitter."""
    return min(30.0, 0.5 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0)


def close_reason(ws: ClientConnection) -> str:
    """Why the server side ended a connection: its close code, or a lost connection."""
    received = ws.close_rcvd
    if received is not None:
        return f"closed by server {received.code}"
    return "connection lost"


__all__ = [
    "SUBPROTOCOL",
    "backoff",
    "close_reason",
    "connect_failure_reason",
    "is_definite",
    "open_connection",
]
