"""Site load management's rules without I/O: station group members, limits, how a
transaction's profile state looks to the planner (:mod:`commands.load_management.allocation`),
and how fast profiles are sent and retried.

The members and their checks are the station group registry's (:mod:`services.station_groups`),
re-exported here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from commands.load_management import allocation as lm
from services.station_groups import check_limit as check_limit
from services.station_groups import check_member_limits as check_member_limits
from services.station_groups import member_for as member_for
from services.station_groups import member_label as member_label
from services.station_groups import member_text as member_text
from services.station_groups import overlaps as overlaps
from services.station_groups import parse_member as parse_member

RETRY_AFTER_S = 30.0  # a limit that failed is not resent sooner; doubled per failure
MAX_RETRY_AFTER_S = 900.0


class Pacer:
    """At most ``per_second`` sends, evenly spaced (a rate of 0 or less: no limit)."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        """Return when the next send may go."""
        if self.interval == 0.0:
            return
        now = self.clock()
        at = max(now, self._next)
        self._next = at + self.interval
        if at > now:
            await self.sleep(at - now)


def _tenths(value: float | None) -> int | None:
    return None if value is None else lm.to_tenths(value)


def retry_after(failures: int) -> float:
    """Seconds before a limit that failed ``failures`` times in a row is sent again."""
    return min(RETRY_AFTER_S * 2 ** max(failures - 1, 0), MAX_RETRY_AFTER_S)


def controlled(alloc: dict[str, Any], ceiling: int, now: datetime) -> lm.Controlled:
    """The planner's view of a ``load_allocations`` document."""
    failed = alloc.get("failed") or {}
    held = None
    if failed and failed["at"] > now - timedelta(seconds=retry_after(failed.get("count", 1))):
        held = _tenths(failed["limit"])
    return lm.Controlled(
        transaction_id=alloc["_id"], started_at=alloc["started_at"], ceiling=ceiling,
        accepted=_tenths(alloc.get("accepted")),
        in_flight=_tenths((alloc.get("in_flight") or {}).get("limit")),
        unsure=_tenths(alloc.get("unsure")), held=held)

