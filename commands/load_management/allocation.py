"""Site load management without I/O: share a station group's limit among its transactions.

A **station group** has one limit, a current per phase (A) or a total power (W). Every
active, authorized transaction on a member connector gets a share; GridLink tells each
charger its share as a TxProfile. Everything here is a pure function of its inputs, so the
same inputs always give the same shares and the same messages, in the same order.

Units. All amounts are integers in **tenths** of the group's unit (OCPP limits carry one
decimal), so rounding can never push a sum over the limit. :func:`member_bounds` turns a
member's amperes into the group's unit: a W group counts a transaction at
``voltage * phases`` watts per ampere; an A group counts every transaction's current
against the per-phase limit whatever its phases (the worst case: GridLink does not know
which phase a single-phase charger is wired to).

Allocation (:func:`allocate`):

1. Priority is the order of start: earliest ``started_at`` first, then the lower
   transaction id.
2. Admission, first fit: in priority order a transaction is admitted when its minimum
   charging rate still fits beside the minimums already admitted; one that does not fit is
   **paused** (share 0) and the next is tried. A transaction without a minimum always fits.
3. Water-filling among the admitted: everyone gets the same level, raised until the limit
   is used, clamped to each transaction's own ``[minimum, maximum]`` (max-min fairness).
   The tenths left over go one each to the uncapped transactions at the level, in priority
   order.

So: the sum of shares never exceeds the limit; every share is 0 or within
``[minimum, maximum]``; no share exceeds its maximum; nobody is paused while a paused
transaction's minimum would fit.

Sending (:func:`plan`): what a charger may draw right now is its **exposure** — the limit
it last accepted, or a higher one sent and not (or not surely) refused, or, before it
accepted any, its ceiling (its connector's maximum, else the whole group limit), never more
than that ceiling.
Sends that do not raise any exposure (decreases, and the first profile of a transaction)
go first; a send that raises one goes only when the sum of exposures, with the raise, stays
within the limit — so increases wait until the chargers have accepted the decreases, and the
sum never exceeds the limit even transiently. Nothing is sent to a transaction with an
unanswered profile, or whose current limit is already the target, or whose last attempt at
that target failed recently (``held``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.station_groups import CURRENT as CURRENT
from services.station_groups import POWER as POWER
from services.station_groups import UNITS as UNITS

SCALE = 10  # amounts are integers in tenths of the group's unit

#: chargingProfileId of load management's TxProfile for a transaction:
#: ``PROFILE_ID_BASE + transactionId mod PROFILE_ID_SPAN`` (below 2**31 for int32 chargers).
PROFILE_ID_BASE = 1_900_000_000
PROFILE_ID_SPAN = 200_000_000
#: stackLevel of load management's TxProfiles when the charger's ChargeProfileMaxStackLevel
#: is unknown; when known, the highest level (so an operator's TxProfile cannot outrank it).
DEFAULT_STACK_LEVEL = 1


def to_tenths(value: float, *, up: bool = False) -> int:
    """An amount in tenths, rounded down (a limit) or up (a minimum)."""
    scaled = round(value * SCALE, 6)  # 0.3 * 10 is 3.0000000000000004
    return math.ceil(scaled) if up else math.floor(scaled)


def from_tenths(tenths: int) -> float:
    """An OCPP decimal with at most one fraction digit."""
    return round(tenths / SCALE, 1)


# --- allocation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Demand:
    """One active transaction in the group, in tenths of the group's unit."""

    transaction_id: int
    started_at: datetime
    minimum: int  # 0: no minimum charging rate
    maximum: int

    @property
    def priority(self) -> tuple[datetime, int]:
        return (self.started_at, self.transaction_id)

    @property
    def high(self) -> int:
        """The maximum share (never negative)."""
        return max(self.maximum, 0)

    @property
    def low(self) -> int:
        """The minimum share when admitted (never above the maximum)."""
        return min(max(self.minimum, 0), self.high)

    def clamp(self, level: int) -> int:
        """The share at water level ``level``."""
        return min(max(level, self.low), self.high)


def by_priority(demands: Iterable[Demand]) -> list[Demand]:
    return sorted(demands, key=lambda d: d.priority)


def admit(limit: int, ordered: list[Demand]) -> list[Demand]:
    """First fit on minimums, in the given (priority) order."""
    admitted, reserved = [], 0
    for demand in ordered:
        if reserved + demand.low <= limit:
            admitted.append(demand)
            reserved += demand.low
    return admitted


def water_level(limit: int, admitted: list[Demand]) -> int:
    """The highest level whose clamped shares fit in ``limit`` (admission guarantees 0 fits)."""
    bounds = [(d.low, d.high) for d in admitted]
    bottom, top = 0, max((high for _, high in bounds), default=0)
    while bottom < top:
        middle = (bottom + top + 1) // 2
        if sum(min(max(middle, low), high) for low, high in bounds) <= limit:
            bottom = middle
        else:
            top = middle - 1
    return bottom


def allocate(limit: int, demands: Iterable[Demand]) -> dict[int, int]:
    """Each transaction's share (tenths); see the module docstring for the rules."""
    ordered = by_priority(demands)
    if len({d.transaction_id for d in ordered}) != len(ordered):
        raise ValueError("a transaction appears twice")
    limit = max(limit, 0)
    admitted = admit(limit, ordered)
    level = water_level(limit, admitted)
    shares = {d.transaction_id: 0 for d in ordered}
    shares.update({d.transaction_id: d.clamp(level) for d in admitted})
    left = limit - sum(shares.values())
    for demand in admitted:
        if left <= 0:
            break
        if demand.low <= level < demand.high:
            shares[demand.transaction_id] += 1
            left -= 1
    return shares


# --- groups and members --------------------------------------------------------------------


@dataclass(frozen=True)
class GroupLimit:
    """A group's limit: ``value`` in ``unit``; ``voltage`` and default ``phases`` for W."""

    unit: str
    value: float
    voltage: float = 230.0
    phases: int = 3

    @property
    def tenths(self) -> int:
        return to_tenths(self.value)

    def per_ampere(self, phases: int | None) -> float:
        """How much one ampere per phase of a member counts against the limit."""
        if self.unit == CURRENT:
            return 1.0
        return self.voltage * (phases or self.phases)


@dataclass(frozen=True)
class MemberBounds:
    """A member connector's bounds in tenths of the group's unit."""

    minimum: int
    maximum: int  # also its ceiling: what it may draw before it accepted any profile


def member_bounds(group: GroupLimit, *, max_current: float | None, min_current: float | None,
                  phases: int | None) -> MemberBounds:
    """A member's minimum and maximum (amperes per phase) in tenths of the group's unit.

    Without a maximum, the member may use the whole group limit.
    """
    factor = group.per_ampere(phases)
    maximum = group.tenths if max_current is None else min(
        to_tenths(max_current * factor), group.tenths)
    minimum = 0 if min_current is None else to_tenths(min_current * factor, up=True)
    return MemberBounds(minimum=minimum, maximum=maximum)


# --- what to send ------------------------------------------------------------------------


@dataclass(frozen=True)
class Controlled:
    """What GridLink knows about one transaction's profile (tenths of the group's unit)."""

    transaction_id: int
    started_at: datetime
    ceiling: int  # the most it can draw (its connector's maximum, else the group limit)
    accepted: int | None = None  # the limit the charger last accepted; None: none yet
    in_flight: int | None = None  # sent, not answered yet
    unsure: int | None = None  # sent, outcome unknown (timeout, error): may be in force
    held: int | None = None  # a limit whose sending failed recently: not retried yet

    @property
    def exposure(self) -> int:
        """The most the charger may draw now."""
        current = self.ceiling if self.accepted is None else self.accepted
        for maybe in (self.in_flight, self.unsure):
            if maybe is not None:
                current = max(current, maybe)
        return min(current, self.ceiling)


@dataclass(frozen=True)
class Send:
    transaction_id: int
    limit: int  # tenths
    raises: bool  # raises the charger's exposure (waits for room under the limit)


def plan(limit: int, states: Iterable[Controlled], targets: Mapping[int, int]) -> list[Send]:
    """The profiles to send now, in order: first those that raise nothing, then raises."""
    ordered = sorted(states, key=lambda s: (s.started_at, s.transaction_id))
    total = sum(s.exposure for s in ordered)
    lowering: list[Send] = []
    raising: list[tuple[Controlled, int]] = []
    for state in ordered:
        target = targets.get(state.transaction_id)
        if target is None or state.in_flight is not None:
            continue
        if (target == state.accepted and state.unsure is None) or target == state.held:
            continue
        if min(target, state.ceiling) <= state.exposure:
            lowering.append(Send(state.transaction_id, target, raises=False))
        else:
            raising.append((state, target))
    sends = lowering
    for state, target in raising:
        delta = min(target, state.ceiling) - state.exposure
        if total + delta <= limit:
            sends.append(Send(state.transaction_id, target, raises=True))
            total += delta
    return sends


# --- the TxProfile ---------------------------------------------------------------------------


def profile_id(transaction_id: int) -> int:
    """Load management's chargingProfileId for a transaction (deterministic)."""
    return PROFILE_ID_BASE + transaction_id % PROFILE_ID_SPAN


def is_reserved_profile_id(charging_profile_id: int) -> bool:
    """Is this id in the range load management uses?"""
    return PROFILE_ID_BASE <= charging_profile_id < PROFILE_ID_BASE + PROFILE_ID_SPAN


def stack_level(max_stack_level: int | None) -> int:
    """Load management's stackLevel on a charger (its ChargeProfileMaxStackLevel if known)."""
    return DEFAULT_STACK_LEVEL if max_stack_level is None else max(max_stack_level, 0)


def charger_limit(tenths: int, *, group_unit: str, charger_unit: str, per_ampere: float
                  ) -> float:
    """A share in the unit the charger takes, rounded down to one decimal."""
    if charger_unit == group_unit:
        return from_tenths(tenths)
    if group_unit == POWER:  # watts -> amperes per phase
        return from_tenths(math.floor(round(tenths / per_ampere, 6)))
    return from_tenths(math.floor(round(tenths * per_ampere, 6)))  # amperes -> watts


def tx_profile_payload(*, transaction_id: int, connector: int, limit: float, unit: str,
                       phases: int | None, stack: int) -> dict[str, Any]:
    """SetChargingProfile for one transaction: one period from the start, no end."""
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    if phases is not None:
        period["numberPhases"] = phases
    return {
        "connectorId": connector,
        "csChargingProfiles": {
            "chargingProfileId": profile_id(transaction_id),
            "transactionId": transaction_id,
            "stackLevel": stack,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": unit,
                                 "chargingSchedulePeriod": [period]},
        },
    }
