"""A fleet of simulated chargers over WebSockets: connecting, timers, rate limiting, shutdown.

One asyncio task per charger reads its WebSocket and feeds a
:class:`~simulator.charger.Charger`; everything else is shared so that one process drives
thousands of chargers:

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
(:mod:`simulator.tls`: the plan's CAs or the system store, its client certificate).

What to run is a :class:`~simulator.plan.FleetPlan`; opening a WebSocket and naming why one
failed or closed is :mod:`simulator.connections`; the live line is
:mod:`simulator.progress`; running in several processes is :mod:`simulator.workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic as clock
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from simulator import credentials
from simulator.charger import Charger
from simulator.connections import (
    SUBPROTOCOL,
    backoff,
    close_reason,
    connect_failure_reason,
    is_definite,
    open_connection,
)
from simulator.errors import Unreachable
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


@dataclass(eq=False)
class _Slot:
    charger: Charger
    url: str
    source: str | None
    files: tuple[str, str] | None = None  # client certificate and key (profile 3)
    ws: ClientConnection | None = None
    timer: asyncio.TimerHandle | None = None
    timer_at: float = math.inf
    connected_once: bool = False


class Fleet:
    """Runs one :class:`FleetPlan` in the current event loop; :meth:`run` returns the stats."""

    def __init__(
        self,
        plan: FleetPlan,
        stats: Stats | None = None,
        *,
        progress: TextIO | None = None,
        on_all_accepted: Callable[[], None] | None = None,
    ) -> None:
        if plan.profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        self.plan = plan
        self.stats = stats or Stats()
        self.stats.expected_chargers = plan.chargers
        self.validation = Validation(plan.validate)
        self._progress = ProgressLine(progress) if progress is not None else None
        self._on_all_accepted = on_all_accepted
        self._stopping = False
        self._stop = asyncio.Event()
        self._slots: list[_Slot] = []
        self._send_tasks: set[asyncio.Task[None]] = set()
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
        self._loop = loop
        passwords = (
            credentials.read_password_file(plan.password_file) if plan.password_file else None
        )
        for index in range(plan.chargers):
            config = plan.charger_config(index, passwords=passwords)
            charger = Charger(config, self.stats, self.validation)
            url = plan.charger_url(config.charger_id)
            slot = _Slot(charger, url, plan.source_address(index), plan.client_files(index))
            self._slots.append(slot)
        if plan.start_at is not None:
            await asyncio.sleep(max(plan.start_at - clock(), 0.0))
        start = clock()
        self.stats.started_at = start
        end = start + plan.duration_s
        ramp = 0.0 if plan.profile == "storm" else min(plan.ramp_s, plan.duration_s)
        drivers = [
            loop.create_task(self._drive(slot, ramp * i / max(len(self._slots), 1)))
            for i, slot in enumerate(self._slots)
        ]
        pacer = (
            loop.create_task(
                # the rate and skips count once the ramp is over
                self.pacer.run(len(self._slots), self._turn, measure_from=start + ramp, end=end)
            )
            if plan.profile == "realistic" and plan.rate > 0
            else None
        )
        try:
            self.end_reason = await self._watch(end)
        finally:
            self._stopping = True
            if pacer is not None:
                pacer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pacer
            await self._drain()
            self.elapsed_s = clock() - start
            await self._close_all()
            for task in drivers:
                task.cancel()
            await asyncio.gather(*drivers, return_exceptions=True)
            for slot in self._slots:
                if slot.timer is not None:
                    slot.timer.cancel()
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

    async def _drain(self) -> None:
        """Give outstanding CALLs a short grace to be answered; count the rest as unanswered."""
        deadline = clock() + min(self.plan.close_grace_s, self.plan.call_timeout_s)
        while clock() < deadline and any(  # noqa: ASYNC110 - bounded poll at shutdown
            s.ws is not None and s.charger.outstanding is not None for s in self._slots
        ):
            await asyncio.sleep(0.02)
        for slot in self._slots:
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

        open_ = [s.ws for s in self._slots if s.ws is not None]
        await asyncio.gather(*(close(ws) for ws in open_))

    # --- one charger -----------------------------------------------------------------------

    async def _drive(self, slot: _Slot, delay: float) -> None:
        plan = self.plan
        charger = slot.charger
        if delay > 0:
            await asyncio.sleep(delay)
        attempt = 0
        while not self._stopping:
            try:
                ws = await self._open(slot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.connect_failed(connect_failure_reason(exc, tls=plan.tls))
                if not plan.reconnect:
                    return
                attempt += 1
                await asyncio.sleep(backoff(attempt))
                continue
            if ws.subprotocol != SUBPROTOCOL:
                self.stats.connect_failed("no ocpp1.6 subprotocol")
                await ws.close()
                attempt += 1
                await asyncio.sleep(backoff(attempt))
                continue
            attempt = 0
            slot.ws = ws
            slot.connected_once = True
            self.stats.connected()
            reason = "closed by client"
            try:
                self._send(slot, charger.connected(clock()))
                async for message in ws:
                    out = charger.received(message, clock())
                    for frame in out:
                        await ws.send(frame)
                    if charger.wants_close:  # a reset, new credentials: reconnect
                        await ws.close()
                        break
                    self._schedule(slot)
                if charger.wants_close:
                    reason = charger.close_reason or "reset"
                elif not self._stopping:
                    reason = close_reason(ws)
            except ConnectionClosed:
                reason = "closed by client" if self._stopping else close_reason(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in the simulator: count it, keep the fleet going
                self.stats.internal_errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                reason = "simulator error"
                await ws.close()
            finally:
                slot.ws = None
                if slot.timer is not None:
                    slot.timer.cancel()
                    slot.timer = None
                    slot.timer_at = math.inf
                charger.disconnected(clock())
                self.stats.closed(reason)
            if self._stopping or not plan.reconnect:
                return
            await asyncio.sleep(0.5 if charger.wants_close else backoff(1))

    async def _open(self, slot: _Slot) -> ClientConnection:
        """Open a charger's WebSocket with its password and, for wss://, its TLS context."""
        plan = self.plan
        charger = slot.charger
        context = self.contexts.get(files=slot.files) if plan.tls else None
        return await open_connection(
            slot.url,
            open_timeout=plan.connect_timeout_s,
            ping_interval=plan.ping_interval_s,
            source=slot.source,
            ssl_context=context,
            headers=credentials.headers(charger.id, charger.authorization_key),
        )

    def _send(self, slot: _Slot, frames: list[str]) -> None:
        """Send frames from outside the charger's reader task, in order."""
        ws = slot.ws
        if not frames or ws is None:
            return
        task = self._loop.create_task(_send_frames(ws, frames))
        self._send_tasks.add(task)
        task.add_done_callback(self._send_tasks.discard)
        self._schedule(slot)

    def _schedule(self, slot: _Slot) -> None:
        deadline = slot.charger.deadline()
        if deadline is None or deadline >= slot.timer_at:
            return
        if slot.timer is not None:
            slot.timer.cancel()
        slot.timer_at = deadline
        slot.timer = self._loop.call_later(max(deadline - clock(), 0.0), self._on_timer, slot)

    def _on_timer(self, slot: _Slot) -> None:
        slot.timer = None
        slot.timer_at = math.inf
        if slot.ws is None:
            return
        try:
            out = slot.charger.timer(clock())
        except Exception as exc:
            self.stats.internal_errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
            return
        self._send(slot, out)
        self._schedule(slot)
        if slot.charger.wants_close and slot.ws is not None:
            self._loop.create_task(slot.ws.close())

    # --- the pacer's turns ---------------------------------------------------------------

    def _turn(self, index: int, now: float) -> bool:
        """Charger ``index``'s turn from the pacer: whether it sent its next scripted CALL."""
        slot = self._slots[index]
        if slot.ws is None:
            return False
        try:
            out = slot.charger.step(now)
        except Exception as exc:
            self.stats.internal_errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
            return False
        if not out:
            return False
        self._send(slot, out)
        return True

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


async def _send_frames(ws: ClientConnection, frames: list[str]) -> None:
    with contextlib.suppress(ConnectionClosed):
        for frame in frames:
            await ws.send(frame)


__all__ = [
    "END_ALL_ACCEPTED",
    "END_DURATION",
    "END_STOPPED",
    "PROFILES",
    "Fleet",
    "Unreachable",
    "connect_failure_reason",
]
