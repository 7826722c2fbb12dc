"""One charger's link to the CSMS, as a fleet drives it: the socket side of a Charger.

A :class:`ChargerLink` runs one :class:`~simulator.charger.Charger`'s connection loop
(:meth:`ChargerLink.drive`): connect with its credentials (the HTTP Basic header of its
``AuthorizationKey``) and, for ``wss://``, its TLS context (the fleet's CAs or the
certificates it has installed, its client certificate from files or from a CertificateSigned:
:mod:`simulator.tls`), feed it what it receives, send what it answers, reconnect when the
connection ends (with capped exponential backoff, or soon after a reset or new credentials).
A failed connect is counted by reason and, for a TLS or 401 refusal, given to the charger as
a security event.  It also keeps the charger's timer (one ``loop.call_later`` handle, moved
only when the deadline gets earlier), sends frames from outside the reader task in order
(:meth:`ChargerLink.send`), and runs the charger's file transfers
(:mod:`simulator.transfers`), reporting their start and end back to it.

What the links of a fleet share (the plan, the stats, the TLS contexts, the loop) is a
:class:`Shared`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from time import monotonic as clock
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from simulator import credentials, transfers
from simulator.charger import Charger
from simulator.connections import (
    SUBPROTOCOL,
    backoff,
    close_reason,
    connect_failure_reason,
    open_connection,
    security_event_for,
)
from simulator.errors import TlsSetupError
from simulator.plan import FleetPlan
from simulator.security import Transfer, TransferOutcome
from simulator.stats import Stats
from simulator.tls import ClientContexts


@dataclass(eq=False)
class Shared:
    """What the links of one fleet share."""

    plan: FleetPlan
    stats: Stats
    contexts: ClientContexts
    loop: asyncio.AbstractEventLoop
    stopping: Callable[[], bool]  # the run is ending: do not reconnect
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # sends and transfers

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine as a task the fleet keeps (and cancels at the end)."""
        task = self.loop.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _internal_error(stats: Stats, exc: BaseException) -> None:
    stats.internal_errors[f"{type(exc).__name__}: {exc}"[:120]] += 1


@dataclass(eq=False)
class ChargerLink:
    """One charger, its URL and local address, and its connection while it has one."""

    charger: Charger
    url: str
    source: str | None
    shared: Shared
    files: tuple[str, str] | None = None  # client certificate and key (profile 3)
    ws: ClientConnection | None = None
    timer: asyncio.TimerHandle | None = None
    timer_at: float = math.inf
    connected_once: bool = False

    def context(self) -> ssl.SSLContext:
        """Its TLS context now: its trust and certificate may have changed since the last."""
        store = self.charger.security.store
        return self.shared.contexts.get(
            files=self.files, trust=store.trust(), identity=store.identity()
        )

    async def _open(self) -> ClientConnection:
        plan = self.shared.plan
        return await open_connection(
            self.url,
            open_timeout=plan.connect_timeout_s,
            ping_interval=plan.ping_interval_s,
            source=self.source,
            ssl_context=self.context() if plan.tls else None,
            headers=credentials.headers(self.charger.id, self.charger.authorization_key),
        )

    def _server_certificate(self, ws: ClientConnection) -> bytes | None:
        """The DER certificate the server was verified with (None: plain or --insecure)."""
        if not self.shared.plan.tls or self.shared.plan.insecure:
            return None
        tls = ws.transport.get_extra_info("ssl_object")
        return tls.getpeercert(binary_form=True) if tls is not None else None

    async def drive(self, delay: float) -> None:
        """Connect after ``delay``, run the connection, reconnect, until the run ends."""
        shared, charger = self.shared, self.charger
        plan, stats = shared.plan, shared.stats
        if delay > 0:
            await asyncio.sleep(delay)
        attempt = 0
        while not shared.stopping():
            try:
                ws = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = connect_failure_reason(exc, tls=plan.tls)
                stats.connect_failed(reason)
                event = security_event_for(reason)
                if event is not None:
                    charger.security_event(event, reason)
                if not plan.reconnect:
                    return
                attempt += 1
                await asyncio.sleep(backoff(attempt))
                continue
            if ws.subprotocol != SUBPROTOCOL:
                stats.connect_failed("no ocpp1.6 subprotocol")
                await ws.close()
                attempt += 1
                await asyncio.sleep(backoff(attempt))
                continue
            attempt = 0
            await self._run(ws)
            if shared.stopping() or not plan.reconnect:
                return
            await asyncio.sleep(0.5 if charger.wants_close else backoff(1))

    async def _run(self, ws: ClientConnection) -> None:
        """One connection, from its BootNotification until it closes."""
        shared, charger = self.shared, self.charger
        self.ws = ws
        self.connected_once = True
        shared.stats.connected()
        reason = "closed by client"
        try:
            self.send(charger.connected(clock(), server_certificate=self._server_certificate(ws)))
            async for message in ws:
                out = charger.received(message, clock())
                for frame in out:
                    await ws.send(frame)
                self._start_transfers()
                if charger.wants_close:  # a reset, new credentials: reconnect
                    await ws.close()
                    break
                self._schedule()
            if charger.wants_close:
                reason = charger.close_reason or "reset"
            elif not shared.stopping():
                reason = close_reason(ws)
        except ConnectionClosed:
            reason = "closed by client" if shared.stopping() else close_reason(ws)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the simulator: count it, keep the fleet going
            _internal_error(shared.stats, exc)
            reason = "simulator error"
            await ws.close()
        finally:
            self.ws = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
                self.timer_at = math.inf
            charger.disconnected(clock())
            shared.stats.closed(reason)

    # --- sending and the timer ----------------------------------------------------------

    def send(self, frames: list[str]) -> None:
        """Send frames from outside the charger's reader task, in order."""
        ws = self.ws
        if not frames or ws is None:
            return
        self.shared.spawn(_send_frames(ws, frames))
        self._schedule()

    def _schedule(self) -> None:
        deadline = self.charger.deadline()
        if deadline is None or deadline >= self.timer_at:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = deadline
        self.timer = self.shared.loop.call_later(max(deadline - clock(), 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = math.inf
        if self.ws is None:
            return
        try:
            out = self.charger.timer(clock())
        except Exception as exc:
            _internal_error(self.shared.stats, exc)
            return
        self.send(out)
        self._schedule()
        if self.charger.wants_close and self.ws is not None:
            self.shared.loop.create_task(self.ws.close())

    def turn(self, now: float) -> bool:
        """The pacer's turn: whether the charger sent its next scripted CALL."""
        if self.ws is None:
            return False
        try:
            out = self.charger.step(now)
        except Exception as exc:
            _internal_error(self.shared.stats, exc)
            return False
        if not out:
            return False
        self.send(out)
        return True

    # --- file transfers ------------------------------------------------------------------

    def _start_transfers(self) -> None:
        for transfer in self.charger.take_transfers():
            self.shared.spawn(self._transfer(transfer))

    async def _transfer(self, transfer: Transfer) -> None:
        """Run one transfer at its time, telling the charger when it starts and ends."""
        charger = self.charger
        try:
            if transfer.delay_s > 0:
                await asyncio.sleep(transfer.delay_s)
            self.send(charger.transfer_started(transfer, clock()))
            try:
                https = urlsplit(transfer.url).scheme.lower() == "https"
                context = self.context() if https else None
            except TlsSetupError as exc:
                outcome = TransferOutcome(False, error=f"TLS files not loaded ({exc})")
            else:
                timeout = self.shared.plan.connect_timeout_s
                outcome = await transfers.run(transfer, context, timeout_s=timeout)
            self.send(charger.transfer_done(transfer, outcome, clock()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the simulator: count it
            _internal_error(self.shared.stats, exc)


async def _send_frames(ws: ClientConnection, frames: list[str]) -> None:
    with contextlib.suppress(ConnectionClosed):
        for frame in frames:
            await ws.send(frame)


__all__ = ["ChargerLink", "Shared"]
