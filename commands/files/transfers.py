"""What the file server's handlers share: refusals as HTTP answers, the transfer metrics, and
the read and write deadlines.

Outcomes counted (``gridlink_commands_file_transfers_total{action, outcome}``): ``ok``,
``partial``, ``head``, ``unknown_token``, ``not_found``, ``expired``, ``used``, ``in_use``,
``tokenless``, ``too_large``, ``bad_request``, ``bad_range``, ``timeout``, ``aborted``,
``store_unavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from prometheus_client import Counter

from services.errors import GridLinkError

DIAGNOSTICS_UPLOAD = "diagnostics_upload"
LOG_UPLOAD = "log_upload"
FIRMWARE_DOWNLOAD = "firmware_download"
RETRY_AFTER_S = 30
#: The request's action label, once the handler knows it (a log token's upload).
ACTION = web.RequestKey("action", str)

TRANSFERS = Counter(
    "gridlink_commands_file_transfers_total",
    "Diagnostics and log uploads and firmware downloads at the file server, by action and "
    "outcome.",
    ["action", "outcome"],
)
TRANSFER_BYTES = Counter(
    "gridlink_commands_file_transfer_bytes_total",
    "Bytes received (uploads) and sent (downloads) by the file server, by action.",
    ["action"],
)

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """How much and how long the file server accepts (GRIDLINK_MAX_UPLOAD_BYTES,
    GRIDLINK_FILES_REQUEST_TIMEOUT_S, GRIDLINK_FILES_IDLE_TIMEOUT_S)."""

    max_upload_bytes: int
    request_timeout_s: float = 3600.0
    idle_timeout_s: float = 60.0


class TransferRefused(GridLinkError):
    """An HTTP error answer, counted as ``outcome``."""

    def __init__(self, status: int, outcome: str, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason
        self.headers = headers or {}

    @classmethod
    def of(cls, refusal: tuple[int, str, str]) -> TransferRefused:
        """From a rule's (status, outcome, reason)."""
        status, outcome, reason = refusal
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 409 else None
        return cls(status, outcome, reason, headers)

    def response(self) -> web.Response:
        response = web.Response(status=self.status, text=self.reason + "\n",
                                headers=self.headers)
        if self.status == 408:
            response.force_close()
        return response


def store_unavailable() -> TransferRefused:
    return TransferRefused(503, "store_unavailable", "database unavailable, retry later",
                           {"Retry-After": str(RETRY_AFTER_S)})


def timed_out(what: str) -> TransferRefused:
    return TransferRefused(408, "timeout", f"{what} took too long")


async def within(idle_s: float, step: Awaitable[T]) -> T:
    """``step``, unless it takes longer than ``idle_s`` (then TimeoutError)."""
    return await asyncio.wait_for(step, idle_s)


async def chunks_within(idle_s: float, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks of a body, each within ``idle_s`` of the previous one (TimeoutError
    otherwise): a stalled client does not hold its connection."""
    while True:
        try:
            chunk = await asyncio.wait_for(anext(chunks), idle_s)
        except StopAsyncIteration:
            return
        yield chunk
