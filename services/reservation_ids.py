"""Reservation ids (ReserveNow's ``reservationId``): allocated from a counter, never one in
use. Shared by the commands service's reservations feature, the CLI (``gridlink reserve``)
and the HTTP API (``POST /api/v1/reservations``)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services import counters
from services.command_records import RESERVATIONS

COUNTER = "reservation_id"  # in services.counters
MAX_ID = 2**31 - 1  # chargers keep reservationId in a signed 32-bit integer


async def allocate_id(db: AsyncDatabase[dict[str, Any]]) -> int:
    """A reservationId never handed out before (skips ids requesters chose themselves)."""
    while True:
        value = await counters.advance(db, COUNTER)
        if value > MAX_ID:
            raise OverflowError("reservation ids exhausted (int32)")
        if await db[RESERVATIONS].find_one({"_id": value}, {"_id": 1}) is None:
            return value
