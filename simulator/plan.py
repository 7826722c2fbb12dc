"""What a fleet run does: the :class:`FleetPlan`, and :func:`split_plan` over processes.

A plan is plain data: the target URL, the fleet (size, connectors, identities and id tags),
the profile with its knobs (duration, rate, ramp, timeouts, validation, script).  One plan
runs in one process (:class:`simulator.fleet.Fleet`); :func:`split_plan` divides it between
worker processes so that identities stay unique and the rate adds up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote

from simulator.charger_config import ChargerConfig


@dataclass(frozen=True)
class FleetPlan:
    """What to run: the target, the fleet, the profile and its knobs."""

    url: str
    chargers: int
    connectors: int = 1
    profile: str = "realistic"
    duration_s: float = 60.0
    rate: float = 100.0
    id_prefix: str = "SIM"
    id_tag: str = "SIMTAG0001"
    first_index: int = 1
    id_width: int = 0  # digits in charger ids; 0: enough for first_index + chargers
    ramp_s: float = 10.0
    call_timeout_s: float = 30.0
    connect_timeout_s: float = 30.0
    close_grace_s: float = 5.0
    validate: str = "first"
    script: str = "session"
    meter_values_per_session: int = 8
    heartbeat_interval_s: float | None = None
    source_addresses: tuple[str, ...] = ()
    ping_interval_s: float | None = None
    reconnect: bool = True
    fail_fast: bool = True  # give up if nothing connects: refused/4xx, or all failed twice
    jitter: bool = True  # desynchronise sessions (random first delay and session lengths)
    start_at: float | None = None  # time.monotonic() to start at (aligns worker processes)

    def charger_id(self, index: int) -> str:
        """The identity of the ``index``-th charger (0-based within this plan)."""
        width = self.id_width or len(str(self.first_index + self.chargers - 1))
        return f"{self.id_prefix}{self.first_index + index:0{width}d}"

    def id_tag_for(self, index: int) -> str:
        """The idTag of the ``index``-th charger: ``id_tag`` with ``{n}`` replaced by its number."""
        width = self.id_width or len(str(self.first_index + self.chargers - 1))
        return self.id_tag.replace("{n}", f"{self.first_index + index:0{width}d}")

    def charger_url(self, charger_id: str) -> str:
        """``{url}/{id}`` with the id percent-encoded."""
        return f"{self.url.rstrip('/')}/{quote(charger_id, safe='')}"

    def charger_config(self, index: int) -> ChargerConfig:
        """How the ``index``-th charger behaves (profiles other than realistic run sessions)."""
        return ChargerConfig(
            charger_id=self.charger_id(index),
            connectors=self.connectors,
            id_tag=self.id_tag_for(index),
            call_timeout_s=self.call_timeout_s,
            meter_values_per_session=self.meter_values_per_session,
            heartbeat_interval_s=self.heartbeat_interval_s,
            script=self.script if self.profile == "realistic" else "session",
            jitter=self.jitter,
        )

    def source_address(self, index: int) -> str | None:
        """The local address the ``index``-th charger connects from (None: the default)."""
        if not self.source_addresses:
            return None
        return self.source_addresses[index % len(self.source_addresses)]


def split_plan(plan: FleetPlan, workers: int) -> list[FleetPlan]:
    """Divide a plan's chargers (and rate) between ``workers`` processes."""
    workers = max(1, min(workers, plan.chargers))
    base, extra = divmod(plan.chargers, workers)
    plans: list[FleetPlan] = []
    first = plan.first_index
    width = plan.id_width or len(str(plan.first_index + plan.chargers - 1))
    for n in range(workers):
        count = base + (1 if n < extra else 0)
        addresses = plan.source_addresses[n::workers] or plan.source_addresses
        plans.append(
            replace(
                plan,
                chargers=count,
                first_index=first,
                id_width=width,
                rate=plan.rate * count / plan.chargers,
                source_addresses=addresses,
            )
        )
        first += count
    return plans


__all__ = ["FleetPlan", "split_plan"]
