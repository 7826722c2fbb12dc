"""A fleet of simulated chargers over WebSockets: the run, rate limiting, shutdown.

One asyncio task per charger (:class:`~simulator.link.ChargerLink`: connect, read, answer,
reconnect, its timer and file transfers) feeds a :class:`~simulator.charger.Charger`;
everything else is shared so that one process drives thousands of chargers:

- timers: one ``loop.call_later`` handle per charger, moved only when its deadline gets earlier
  (a timer that fires early just re-arms);
- time: ``time.monotonic()`` everywhere (uvloop's ``loop.time()`` only has millisecond
  resolution, too coarse for latencies);
- the pacer (profile ``realistic``, :mod:`simulator.pacer`): one task hands out send slots
  at ``rate`` per second across the fleet, round-robin over chargers that have no CALL
  outstanding; a slot no charger could take is counted in ``pacer_skips`` (the offered load
  was not achieved);
- connects: staggered over ``ramp_s`` (``realistic``, ``idle``) or all at once (``storm``);
  failed or dropped connections are retried with capped exponential backoff and jitter.

Profiles: ``realistic`` (ramp, sessions paced at ``rate`` msgs/s, heartbeats),
``storm`` (everyone connects at once and boots; the run ends when all are Accepted or at
``duration_s``), ``idle`` (ramp, boot, heartbeats only).  Why a run ended is
:attr:`Fleet.end_reason` (and ``end_reason`` in the report).

Security profiles: each connect sends the charger's HTTP Basic header when it has a password
(:mod:`simulator.credentials`) and, for ``wss://``, uses its TLS context
(:mod:`simulator.tls`: the plan's CAs or the system store, its client certificate); the
plan's files are read once here (the passwords, the CA file the chargers start with as
their CentralSystemRootCertificates).

What to run is a :class:`~simulator.plan.FleetPlan`; opening a WebSocket and naming why one
failed or closed is :mod:`simulator.connections`; the live line is
:mod:`simulator.progress`; running in several processes is :mod:`simulator.workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from time import monotonic as clock
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection

from simulator import credentials
from simulator.charger import Charger
from simulator.connections import connect_failure_reason, is_definite
from simulator.errors import Unreachable
from simulator.ledger import Ledger
from simulator.link import ChargerLink, Shared
from simulator.pacer import Pacer
from simulator.plan import FleetPlan
from simulator.progress import ProgressLine
from simulator.stats import Stats
from simulator.tls import ClientContexts
from simulator.validation import Validation

PROFILES = ("realistic", "storm", "idle")

#: Why a run ended (:attr:`Fleet.end_reason`).
END_DURATION = "duration"  # duration_s ran out
END_ALL_ACCEPTED = "all_accepted"  # storm: every charger was Accepted
END_STOPPED = "stopped"  # Fleet.stop() (e.g. SIGINT)


class Fleet:
    """Runs one :class:`FleetPlan` in the current event loop; :meth:`run` returns the stats."""

    def __init__(
        self,
        plan: FleetPlan,
        stats: Stats | None = None,
        *,
        progress: TextIO | None = None,
        on_all_accepted: Callable[[], None] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        if plan.profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        self.plan = plan
        self.stats = stats or Stats()
        self.stats.expected_chargers = plan.chargers
        self.validation = Validation(plan.validate)
        self._progress = ProgressLine(progress) if progress is not None else None
        self._on_all_accepted = on_all_accepted
        self.ledger = ledger  # what the chargers sent and were answered (simulator.ledger)
        self._stopping = False
        self._stop = asyncio.Event()
        self.links: list[ChargerLink] = []
        self.pacer = Pacer(plan.rate, self.stats)
        self.contexts = ClientContexts(ca_file=plan.ca_file, insecure=plan.insecure)
        self.elapsed_s = 0.0
        self.end_reason: str | None = None  # END_*: set when the run ends (None: it raised)

    @property
    def rate(self) -> float:
        """The paced rate (messages per second); a benchmark may change it during a run."""
        return self.pacer.rate

    @rate.setter
    def rate(self, value: float) -> None:
        self.pacer.rate = value

    def stop(self) -> None:
        """End the run early (e.g. on SIGINT): the fleet then drains and closes."""
        self._stop.set()

    # --- the run -------------------------------------------------------------------------

    async def run(self) -> Stats:
        """Connect, drive the profile for ``duration_s``, drain, close; may raise Unreachable."""
        plan = self.plan
        loop = asyncio.get_running_loop()
        shared = Shared(plan, self.stats, self.contexts, loop, lambda: self._stopping)
        passwords = (
            credentials.read_password_file(plan.password_file) if plan.password_file else None
        )
        roots = _read_text(plan.ca_file) if plan.ca_file else ""
        for index in range(plan.chargers):
            config = plan.charger_config(index, passwords=passwords, central_system_roots=roots)
            charger = Charger(config, self.stats, self.validation, ledger=self.ledger)
            url = plan.charger_url(config.charger_id)
            link = ChargerLink(
                charger, url, plan.source_address(index), shared, plan.client_files(index)
            )
            self.links.append(link)
        if plan.start_at is not None:
            await asyncio.sleep(max(plan.start_at - clock(), 0.0))
        start = clock()
        self.stats.started_at = start
        end = start + plan.duration_s
        ramp = 0.0 if plan.profile == "storm" else min(plan.ramp_s, plan.duration_s)
        drivers = [
            loop.create_task(link.drive(ramp * i / max(len(self.links), 1)))
            for i, link in enumerate(self.links)
        ]
        pacer = (
            loop.create_task(
                # the rate and skips count once the ramp is over
                self.pacer.run(len(self.links), self._turn, measure_from=start + ramp, end=end)
            )
            if plan.profile == "realistic" and plan.rate > 0
            else None
        )
        try:
            self.end_reason = await self._watch(end)
            if pacer is not None:
                pacer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pacer
            await self._settle()
        finally:
            self._stopping = True
            if pacer is not None:
                pacer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pacer
            await self._drain()
            self.elapsed_s = clock() - start
            await self._close_all()
            for task in [*drivers, *shared.tasks]:
                task.cancel()
            ended = await asyncio.gather(*drivers, *shared.tasks, return_exceptions=True)
            for outcome in ended[: len(drivers)]:  # a driver that died: a charger lost
                if isinstance(outcome, Exception):
                    what = f"driver: {type(outcome).__name__}: {outcome}"
                    self.stats.internal_errors[what[:120]] += 1
            for link in self.links:
                if link.timer is not None:
                    link.timer.cancel()
            if self._progress is not None:
                self._progress.print(self.stats, clock(), final=True)
        return self.stats

    async def _watch(self, end: float) -> str:
        """Wait for the end of the run; return why it ended (an ``END_*`` value)."""
        stats = self.stats
        notified = False
        while True:
            now = clock()
            if now >= end:
                return END_DURATION
            if self._stop.is_set():
                return END_STOPPED
            if stats.all_accepted_at is not None and not notified:
                notified = True
                if self._on_all_accepted is not None:
                    self._on_all_accepted()
                if self.plan.profile == "storm":
                    return END_ALL_ACCEPTED
            if self.plan.fail_fast and stats.connects == 0 and stats.connect_failures:
                reason, _ = stats.connect_failures.most_common(1)[0]
                failures = sum(stats.connect_failures.values())
                if is_definite(reason) or failures >= max(10, 2 * self.plan.chargers):
                    raise Unreachable(f"cannot connect to {self.plan.url}: {reason}")
            if self._progress is not None and now - self._progress.last_at >= 1.0:
                self._progress.print(stats, now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=min(0.05, max(end - now, 0)))

    async def _settle(self) -> None:
        """``settle_s`` more for the transaction messages still queued or in flight: the
        chargers keep reconnecting and resending them (nothing new is paced)."""
        deadline = clock() + self.plan.settle_s
        while clock() < deadline and any(  # noqa: ASYNC110 - bounded poll at the end
            link.charger.holds_transaction_messages for link in self.links
        ):
            await asyncio.sleep(0.05)

    async def _drain(self) -> None:
        """Give outstanding CALLs a short grace to be answered; count the rest as unanswered."""
        deadline = clock() + min(self.plan.close_grace_s, self.plan.call_timeout_s)
        while clock() < deadline and any(  # noqa: ASYNC110 - bounded poll at shutdown
            s.ws is not None and s.charger.outstanding is not None for s in self.links
        ):
            await asyncio.sleep(0.02)
        for slot in self.links:
            outstanding = slot.charger.outstanding
            if slot.ws is not None and outstanding is not None:
                self.stats.unanswered_at_end[outstanding.pending.action] += 1
                slot.charger.outstanding = None

    async def _close_all(self) -> None:
        gate = asyncio.Semaphore(500)

        async def close(ws: ClientConnection) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), timeout=3.0)

        open_ = [s.ws for s in self.links if s.ws is not None]
        await asyncio.gather(*(close(ws) for ws in open_))

    # --- the pacer's turns ---------------------------------------------------------------

    def _turn(self, index: int, now: float) -> bool:
        """Charger ``index``'s turn from the pacer: whether it sent its next scripted CALL."""
        return self.links[index].turn(now)

    def report(self) -> dict[str, Any]:
        """The stats report with this run's plan and achieved rate."""
        plan = self.plan
        achieved = self.pacer.achieved_rate()
        total = self.stats.totals()["sent"]
        return self.stats.report(
            profile=plan.profile,
            url=plan.url,
            connectors=plan.connectors,
            duration_s=round(self.elapsed_s, 3),
            target_rate=plan.rate if plan.profile == "realistic" else None,
            achieved_rate=round(achieved, 1),
            messages_per_s=round(total / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            end_reason=self.end_reason,
        )


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


__all__ = [
    "END_ALL_ACCEPTED",
    "END_DURATION",
    "END_STOPPED",
    "PROFILES",
    "Fleet",
    "Unreachable",
    "connect_failure_reason",
]
