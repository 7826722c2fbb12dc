"""The file transfers a charger's driver runs for it: the HTTP(S) PUT of a log file and the
GET of a firmware image (whitepaper N01, L01).

A :class:`~simulator.security.Transfer` comes from the protocol core (GetLog,
SignedUpdateFirmware).  :func:`run` does it as a real charger would: over plain HTTP or,
for ``https://``, over the charger's own TLS context (the trust and the client certificate
of its OCPP connection), without the proxies of the load generator's environment, retrying
``retries`` times ``retry_interval_s`` apart.  The request runs in a worker thread
(``urllib``: the simulator uses no HTTP client library), so the event loop keeps driving
the fleet.  The result is a :class:`~simulator.security.TransferOutcome`: ``ok`` with the
downloaded image, or why not ("HTTP 404", "connection refused", "timeout", "TLS: ...",
"larger than 16 MiB").
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import urllib.error
import urllib.request

from simulator.connections import connect_failure_reason
from simulator.security import UPLOAD, Transfer, TransferOutcome

#: The largest firmware image the simulator downloads (it only checks its signature).
MAX_DOWNLOAD = 16 * 1024 * 1024
#: At most this many retries, at most this long apart, whatever the CSMS asks.
MAX_RETRIES = 5
MAX_RETRY_INTERVAL_S = 3600.0


def _request(transfer: Transfer) -> urllib.request.Request:
    if transfer.kind == UPLOAD:
        return urllib.request.Request(
            transfer.url,
            data=transfer.body,
            method="PUT",
            headers={"Content-Type": transfer.content_type},
        )
    return urllib.request.Request(transfer.url, method="GET")


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return connect_failure_reason(reason) if isinstance(reason, BaseException) else str(reason)
    return connect_failure_reason(exc)


def transfer_once(
    transfer: Transfer, context: ssl.SSLContext | None, timeout_s: float
) -> TransferOutcome:
    """One attempt, blocking (see the module docstring)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(_request(transfer), timeout=timeout_s) as response:
            data = b"" if transfer.kind == UPLOAD else response.read(MAX_DOWNLOAD + 1)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return TransferOutcome(False, error=_why(exc))
    if len(data) > MAX_DOWNLOAD:
        return TransferOutcome(False, error=f"larger than {MAX_DOWNLOAD // (1024 * 1024)} MiB")
    return TransferOutcome(True, data=data)


async def run(
    transfer: Transfer, context: ssl.SSLContext | None, *, timeout_s: float
) -> TransferOutcome:
    """Run ``transfer`` (in a worker thread), retrying as it asks; how it ended."""
    retries = max(0, min(transfer.retries, MAX_RETRIES))
    interval = max(0.0, min(transfer.retry_interval_s, MAX_RETRY_INTERVAL_S))
    outcome = await asyncio.to_thread(transfer_once, transfer, context, timeout_s)
    for _ in range(retries):
        if outcome.ok:
            break
        await asyncio.sleep(interval)
        outcome = await asyncio.to_thread(transfer_once, transfer, context, timeout_s)
    return outcome


__all__ = ["MAX_DOWNLOAD", "run", "transfer_once"]
