"""A fleet of simulated chargers over WebSockets: connecting, timers, rate limiting, shutdown.

One asyncio task per charger reads its WebSocket and feeds a
:class:`~simulator.charger.Charger`; everything else is shared so that one process drives
thousands of chargers:

- timers: one ``loop.call_later`` handle per charger, moved only when its deadline gets earlier
  (a timer that fires early just re-arms);
- time: ``time.monotonic()`` everywhere (uvloop's ``loop.time()`` only has millisecond
  resolution, too coarse for latencies);
- the pacer (profile ``realistic``): one task hands out send slots at ``rate`` per second
  across the fleet, round-robin over chargers that have no CALL outstanding; a slot no
  charger could take is counted in ``pacer_skips`` (the offered load was not achieved);
- connects: staggered over ``ramp_s`` (``realistic``, ``idle``) or all at once (``storm``);
  failed or dropped connections are retried with capped exponential backoff and jitter.

Profiles: ``realistic`` (ramp, sessions paced at ``rate`` msgs/s, heartbeats),
``storm`` (everyone connects at once and boots; the run ends when all are Accepted or at
``duration_s``), ``idle`` (ramp, boot, heartbeats only).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from time import monotonic as clock
from typing import Any, TextIO
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from simulator.charger import Charger, ChargerConfig, Validation
from simulator.stats import Stats, percentile

PROFILES = ("realistic", "storm", "idle")
SUBPROTOCOL = Subprotocol("ocpp1.6")


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


@dataclass(eq=False)
class _Slot:
    charger: Charger
    url: str
    source: str | None
    ws: ClientConnection | None = None
    timer: asyncio.TimerHandle | None = None
    timer_at: float = math.inf
    connected_once: bool = False


class Unreachable(Exception):
    """No charger could connect at all (wrong URL, nothing listening, refused handshake)."""


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


@dataclass
class _Progress:
    stream: TextIO
    last_at: float = 0.0
    last_sent: int = 0
    marks: dict[str, int] = field(default_factory=dict)


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
        self._progress = _Progress(progress) if progress is not None else None
        self._on_all_accepted = on_all_accepted
        self._stopping = False
        self._stop = asyncio.Event()
        self._slots: list[_Slot] = []
        self._send_tasks: set[asyncio.Task[None]] = set()
        self.rate = plan.rate  # the pacer reads it every tick: a benchmark may change it
        self.paced_sent = 0
        self.pacing_s = 0.0
        self.elapsed_s = 0.0
        self._measure_from = 0.0

    def stop(self) -> None:
        """End the run early (e.g. on SIGINT): the fleet then drains and closes."""
        self._stop.set()

    # --- the run -------------------------------------------------------------------------

    async def run(self) -> Stats:
        """Connect, drive the profile for ``duration_s``, drain, close; may raise Unreachable."""
        plan = self.plan
        loop = asyncio.get_running_loop()
        self._loop = loop
        config = ChargerConfig(
            charger_id="",
            connectors=plan.connectors,
            id_tag=plan.id_tag,
            call_timeout_s=plan.call_timeout_s,
            meter_values_per_session=plan.meter_values_per_session,
            heartbeat_interval_s=plan.heartbeat_interval_s,
            script=plan.script if plan.profile == "realistic" else "session",
            jitter=plan.jitter,
        )
        for index in range(plan.chargers):
            charger_id = plan.charger_id(index)
            charger = Charger(
                replace(config, charger_id=charger_id, id_tag=plan.id_tag_for(index)),
                self.stats,
                self.validation,
            )
            source = (
                plan.source_addresses[index % len(plan.source_addresses)]
                if plan.source_addresses
                else None
            )
            self._slots.append(_Slot(charger, plan.charger_url(charger_id), source))
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
        self._measure_from = start + ramp  # rate and skips count once the ramp is over
        pacer = (
            loop.create_task(self._pace(end))
            if plan.profile == "realistic" and plan.rate > 0
            else None
        )
        try:
            await self._watch(end)
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
                self._print_progress(clock(), final=True)
        return self.stats

    async def _watch(self, end: float) -> None:
        stats = self.stats
        notified = False
        while True:
            now = clock()
            if now >= end or self._stop.is_set():
                return
            if stats.all_accepted_at is not None and not notified:
                notified = True
                if self._on_all_accepted is not None:
                    self._on_all_accepted()
                if self.plan.profile == "storm":
                    return
            if self.plan.fail_fast and stats.connects == 0 and stats.connect_failures:
                reason, _ = stats.connect_failures.most_common(1)[0]
                failures = sum(stats.connect_failures.values())
                if _is_definite(reason) or failures >= max(10, 2 * self.plan.chargers):
                    raise Unreachable(f"cannot connect to {self.plan.url}: {reason}")
            if self._progress is not None and now - self._progress.last_at >= 1.0:
                self._print_progress(now)
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
                ws = await connect(
                    slot.url,
                    subprotocols=[SUBPROTOCOL],
                    open_timeout=plan.connect_timeout_s,
                    ping_interval=plan.ping_interval_s,
                    close_timeout=2.0,
                    compression=None,
                    max_queue=4,
                    local_addr=(slot.source, 0) if slot.source else None,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.connect_failed(connect_failure_reason(exc))
                if not plan.reconnect:
                    return
                attempt += 1
                await asyncio.sleep(_backoff(attempt))
                continue
            if ws.subprotocol != SUBPROTOCOL:
                self.stats.connect_failed("no ocpp1.6 subprotocol")
                await ws.close()
                attempt += 1
                await asyncio.sleep(_backoff(attempt))
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
                    if charger.wants_close:
                        reason = "reset"
                        await ws.close()
                        break
                    self._schedule(slot)
                if not self._stopping and reason != "reset":
                    reason = _close_reason(ws)
            except ConnectionClosed:
                reason = "closed by client" if self._stopping else _close_reason(ws)
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
            await asyncio.sleep(0.5 if reason == "reset" else _backoff(1))

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

    # --- the pacer ------------------------------------------------------------------------

    async def _pace(self, end: float) -> None:
        slots = self._slots
        count = len(slots)
        if count == 0:
            return
        tokens = 0.0
        cursor = 0
        last = clock()
        measuring = False
        try:
            while True:
                rate = max(self.rate, 1e-3)
                tick = min(0.02, max(0.002, 1.0 / rate))
                await asyncio.sleep(tick)
                now = clock()
                if now >= end:
                    return
                if not measuring and now >= self._measure_from:
                    measuring = True
                    self._measure_from = now
                    self.paced_sent = 0
                    self.stats.pacer_skips = 0
                tokens = min(tokens + (now - last) * rate, max(2.0, rate * tick * 2))
                last = now
                scans = 0
                scan_limit = min(count, int(tokens) * 4 + 64)
                while tokens >= 1.0 and scans < scan_limit:
                    slot = slots[cursor]
                    cursor = cursor + 1 if cursor + 1 < count else 0
                    scans += 1
                    if slot.ws is None:
                        continue
                    try:
                        out = slot.charger.step(now)
                    except Exception as exc:
                        self.stats.internal_errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                        continue
                    if out:
                        self._send(slot, out)
                        tokens -= 1.0
                        self.paced_sent += 1
                if tokens >= 1.0:
                    skipped = int(tokens)
                    self.stats.pacer_skips += skipped
                    tokens -= skipped
        finally:
            self.pacing_s = max(clock() - self._measure_from, 0.0) if measuring else 0.0

    # --- progress ------------------------------------------------------------------------

    def _print_progress(self, now: float, final: bool = False) -> None:
        progress = self._progress
        assert progress is not None
        stats = self.stats
        totals = stats.totals()
        interval = max(now - progress.last_at, 1e-9) if progress.last_at else 1.0
        rate = (totals["sent"] - progress.last_sent) / interval
        recent: list[float] = []
        for name, action in stats.actions.items():
            mark = progress.marks.get(name, 0)
            recent.extend(action.latencies[mark:])
            progress.marks[name] = len(action.latencies)
        recent.sort()
        p99 = f"{percentile(recent, 99) * 1000:.1f} ms" if recent else "-"
        line = (
            f"[{now - stats.started_at:6.1f}s]"
            f" open {stats.open_connections}/{stats.expected_chargers}"
            f" accepted {len(stats.accepted)} | sent {totals['sent']} ({rate:.0f}/s)"
            f" ok {totals['ok']} err {totals['errors']} tmo {totals['timeouts']}"
            f" conn-fail {sum(stats.connect_failures.values())} | p99 {p99}"
        )
        progress.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        progress.stream.flush()
        progress.last_at = now
        progress.last_sent = totals["sent"]

    def report(self) -> dict[str, Any]:
        """The stats report with this run's plan and achieved rate."""
        plan = self.plan
        achieved = self.paced_sent / self.pacing_s if self.pacing_s > 0 else 0.0
        total = self.stats.totals()["sent"]
        return self.stats.report(
            profile=plan.profile,
            url=plan.url,
            connectors=plan.connectors,
            duration_s=round(self.elapsed_s, 3),
            target_rate=plan.rate if plan.profile == "realistic" else None,
            achieved_rate=round(achieved, 1),
            messages_per_s=round(total / self.elapsed_s, 1) if self.elapsed_s else 0.0,
        )


async def _send_frames(ws: ClientConnection, frames: list[str]) -> None:
    with contextlib.suppress(ConnectionClosed):
        for frame in frames:
            await ws.send(frame)


def _is_definite(reason: str) -> bool:
    """A failure that retrying will not fix: nothing listens, no such host, refused by HTTP 4xx."""
    return reason in ("connection refused", "name resolution failed") or reason.startswith("HTTP 4")


def _backoff(attempt: int) -> float:
    return min(30.0, 0.5 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0)


def _close_reason(ws: ClientConnection) -> str:
    received = ws.close_rcvd
    if received is not None:
        return f"closed by server {received.code}"
    return "connection lost"


def _run_worker(plan: FleetPlan) -> Stats:
    """Run one plan in a fresh event loop (the body of a worker process)."""
    from simulator.resources import raise_file_limit

    raise_file_limit()
    return asyncio.run(Fleet(plan).run())


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


async def run_in_processes(plan: FleetPlan, workers: int) -> Stats:
    """Run a plan split over ``workers`` spawned processes and merge their stats exactly."""
    import concurrent.futures
    import multiprocessing

    plans = split_plan(plan, workers)
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(len(plans), mp_context=context) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, _run_worker, p) for p in plans))
    merged = Stats()
    merged.started_at = min(r.started_at for r in results)
    for result in results:
        merged.merge(result)
    merged.expected_chargers = plan.chargers
    return merged


__all__ = [
    "PROFILES",
    "Fleet",
    "FleetPlan",
    "Unreachable",
    "connect_failure_reason",
    "run_in_processes",
    "split_plan",
]
