"""Site load management's rules without I/O: station group members, limits, how a
transaction's profile state looks to the planner (:mod:`commands.load_management.allocation`),
and how fast profiles are sent and retried.

A member is one connector of a station (``STATION:2``) or all of them (``STATION``); a
connector belongs to at most one group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from commands.load_management import allocation as lm
from services.errors import ConfigurationError

RETRY_AFTER_S = 30.0  # a limit that failed is not resent sooner; doubled per failure
MAX_RETRY_AFTER_S = 900.0


def parse_member(text: str) -> tuple[str, int | None]:
    """``STATION`` (all its connectors) or ``STATION:CONNECTOR`` (connector > 0)."""
    station, sep, connector = text.rpartition(":")
    if not sep or not connector.isdigit():
        if not text:
            raise ConfigurationError("empty station id")
        return text, None
    if not station:
        raise ConfigurationError(f"{text!r}: no station before ':'")
    if int(connector) <= 0:
        raise ConfigurationError(f"{text!r}: connector must be > 0")
    return station, int(connector)


def member_label(member: dict[str, Any]) -> str:
    connector = member.get("connector")
    return member["station"] if connector is None else f"{member['station']}:{connector}"


def member_for(group: dict[str, Any], station: str, connector: int) -> dict[str, Any] | None:
    """The group's member entry covering this connector (a connector entry wins)."""
    found = None
    for member in group.get("members", []):
        if member["station"] != station:
            continue
        if member.get("connector") == connector:
            return member
        if member.get("connector") is None:
            found = member
    return found


def check_limit(unit: str, limit: float, phases: int, voltage: float) -> None:
    if unit not in lm.UNITS:
        raise ConfigurationError(f"unit must be A or W, not {unit!r}")
    if not limit > 0:
        raise ConfigurationError("the group limit must be positive")
    if phases not in (1, 2, 3):
        raise ConfigurationError("--phases must be 1, 2 or 3")
    if not voltage > 0:
        raise ConfigurationError("--voltage must be positive")


def check_member_limits(max_current: float | None, min_current: float | None,
                        phases: int | None) -> None:
    if max_current is not None and not max_current > 0:
        raise ConfigurationError("--connector-max must be positive")
    if min_current is not None and not min_current >= 0:
        raise ConfigurationError("--min must not be negative")
    if max_current is not None and min_current is not None and min_current > max_current:
        raise ConfigurationError("--min must not exceed --connector-max")
    if phases is not None and phases not in (1, 2, 3):
        raise ConfigurationError("--phases must be 1, 2 or 3")


def overlaps(member: dict[str, Any], station: str, connector: int | None) -> bool:
    """Does a group member cover (part of) this station or connector?"""
    if member["station"] != station:
        return False
    theirs = member.get("connector")
    return theirs is None or connector is None or theirs == connector


def member_text(member: dict[str, Any]) -> str:
    """``CP1:2 (max 32, min 6, 3ph)`` for ``gridlink groups list``."""
    details = [f"{k} {member[f]:g}" for k, f in (("max", "max_current"), ("min", "min_current"))
               if member.get(f) is not None]
    if member.get("phases") is not None:
        details.append(f"{member['phases']}ph")
    label = member_label(member)
    return f"{label} ({', '.join(details)})" if details else label


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

