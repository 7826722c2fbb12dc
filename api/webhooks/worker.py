"""The webhook worker of an API process: events in from ``{ns}.webhooks``, deliveries out.

- **Bindings** (:mod:`api.webhooks.bindings`): the queue gets only the events some active
  subscription wants, checked every ``RECONCILE_S``; with no subscription, no event is queued.
- **Intake** (:meth:`WebhookWorker.on_event`): an event from the durable queue becomes one
  delivery document per active subscription that wants it (unique per subscription and
  event id, so an event the broker delivers twice adds nothing), written with the client's
  w: majority, and only then acknowledged. While MongoDB is unreachable the event stays in
  hand, retried, unacknowledged — never dead-lettered for an outage.
- **Delivery** (:meth:`WebhookWorker.run_deliveries`): claims due deliveries with a lease
  (:meth:`~api.webhooks.repository.WebhookRepository.claim`), up to
  ``GRIDLINK_WEBHOOK_CONCURRENCY`` at once, signs and POSTs each (:mod:`api.webhooks.sender`),
  and records the attempt: 2xx → delivered; otherwise the next attempt after an exponential
  backoff with jitter, until ``GRIDLINK_WEBHOOK_MAX_ATTEMPTS`` or ``GRIDLINK_WEBHOOK_MAX_AGE_S``
  → failed. New deliveries are attempted at once; due retries are looked for every
  ``GRIDLINK_WEBHOOK_POLL_INTERVAL_S``. A process killed mid-attempt loses nothing: the lease
  runs out and any replica attempts the delivery again (at least once).
- **Stop** (:meth:`WebhookWorker.stop`): stop consuming, let attempts in flight finish within
  the grace period; the rest are retried when their lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter, Histogram
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from api.webhooks import rules
from api.webhooks.bindings import RECONCILE_S, EventBindings
from api.webhooks.repository import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookRepository,
    new_delivery,
)
from api.webhooks.secret_box import SecretBox
from api.webhooks.sender import Outcome, Sender
from services.bus import MessageBus
from services.errors import GridLinkError, Reject, ShuttingDown
from services.events import AT_FIELD, ID_FIELD, PUBLIC_EVENTS, event_id
from services.ocpp16 import iso, parse_time, utcnow
from services.settings import Settings
from services.shutdown import InFlight, drain

log = logging.getLogger("gridlink.api.webhooks")

EVENTS = Counter("gridlink_api_webhook_events_total",
                 "Events taken from the webhooks queue, by how many deliveries they made.",
                 ["outcome"])  # matched | unmatched | duplicate
ATTEMPTS = Counter("gridlink_api_webhook_attempts_total", "Webhook attempts by outcome.",
                   ["outcome"])  # delivered | retry | failed
ATTEMPT_SECONDS = Histogram("gridlink_api_webhook_attempt_seconds",
                            "Duration of webhook attempts.",
                            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
REFUSED = Counter("gridlink_api_webhook_refusals_total",
                  "Webhook attempts refused before sending (a non-public address).")


class WebhookWorker:
    """Intake and delivery for one API process (one per process; replicas share the work)."""

    def __init__(self, settings: Settings, db: AsyncDatabase[dict[str, Any]], bus: MessageBus,
                 box: SecretBox, *, sender: Sender | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.repo = WebhookRepository(db)
        self.bus = bus
        self.box = box
        self.sender = sender or Sender(timeout_s=settings.webhook_timeout_s,
                                       max_response_bytes=settings.webhook_max_response_bytes,
                                       allow_private=settings.webhook_allow_private_urls)
        self.clock = clock
        self.rng = rng or random.Random()
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.in_flight = InFlight()
        self.recorded = asyncio.Condition()  # notified after each attempt is recorded
        self._attempts: set[asyncio.Task[None]] = set()
        self._consumer: tuple[Any, str] | None = None
        self._loop: asyncio.Task[None] | None = None
        self._reconciling: asyncio.Task[None] | None = None
        self.bindings: EventBindings | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Make sure of the indexes (the key's uniqueness is what dedupes), declare
        ``{ns}.webhooks``, bind it to what the subscriptions want, consume it, start the
        delivery loop and the reconciliation of the bindings."""
        await self.repo.ensure_indexes()
        spec = self.bus.topology.webhooks_queue()
        queue = await self.bus.declare_queue(spec)
        self.bindings = EventBindings(queue, self.bus.topology.events, self.repo)
        await self.bindings.reconcile()
        self._consumer = (queue, await self.bus.consume(queue, self.on_event))
        self._loop = asyncio.create_task(self.run_deliveries())
        self._reconciling = asyncio.create_task(self.reconcile_bindings())
        log.info("webhook worker started", extra={"queue": spec.name})

    async def stop(self) -> None:
        """Stop consuming and claiming; attempts in flight finish within the grace period."""
        self.stopping.set()
        self.wake.set()

        async def stop_taking() -> None:
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self.bus.cancel(*self._consumer)

        await drain(stop_taking=stop_taking, in_flight=self.in_flight,
                    grace_s=self.settings.shutdown_grace_s, what="webhook attempts",
                    logger=log)
        tasks = [t for t in [self._loop, self._reconciling, *self._attempts] if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.sender.close()

    async def want(self, patterns: list[str]) -> None:
        """Bind the queue to the events ``patterns`` name (before and after a subscription
        that wants them is stored)."""
        if self.bindings is None:
            raise GridLinkError("the webhook worker has not started")
        await self.bindings.want(patterns)

    async def reconcile_bindings(self) -> None:
        """Every ``RECONCILE_S``: bindings back to what the active subscriptions want."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), RECONCILE_S)
            if self.stopping.is_set() or self.bindings is None:
                return
            try:
                await self.bindings.reconcile()
            except Exception as exc:  # MongoDB or the broker away: the next round retries
                log.warning("webhook bindings not reconciled: retried later",
                            extra={"error": repr(exc)[:200]})

    # --- intake ---------------------------------------------------------------------------

    async def on_event(self, message: AbstractIncomingMessage) -> None:
        """One event: its deliveries stored (retried while MongoDB is away), then acked."""
        with self.in_flight.track():
            event = message.routing_key or ""
            if event not in PUBLIC_EVENTS:
                return  # a binding of an earlier release
            try:
                body = json.loads(message.body)
            except ValueError:
                body = None
            if not isinstance(body, dict):  # dead-lettered, for review (never just dropped)
                raise Reject(f"malformed {event} event: not a JSON object")
            body.setdefault(ID_FIELD, message.message_id or event_id(event, message.body))
            body.setdefault(AT_FIELD, iso(self.clock()))
            delay = 0.1
            while True:
                try:
                    matched, made = await self._intake(event, body)
                    break
                except PyMongoError as exc:
                    if self.stopping.is_set():
                        raise ShuttingDown("stopping while mongodb is unreachable") from exc
                    log.warning("mongodb unreachable: event kept, retrying",
                                extra={"event": event, "error": str(exc)[:200]})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            EVENTS.labels("duplicate" if matched and not made else
                          "matched" if made else "unmatched").inc()
            if made:
                self.wake.set()

    async def _intake(self, event: str, body: dict[str, Any]) -> tuple[int, int]:
        """(subscriptions that want the event, deliveries newly stored for it)."""
        subscriptions = [s for s in await self.repo.subscribers(event)
                         if rules.wanted(s["events"], event)]  # the same rule, in Python
        if not subscriptions:
            return 0, 0
        text = rules.delivery_body(event, body)
        now = self.clock()
        return len(subscriptions), await self.repo.add_deliveries([
            new_delivery(s["_id"], event, body[ID_FIELD], text, now,
                         event_at=_time(body[AT_FIELD], now))
            for s in subscriptions])

    # --- delivery -------------------------------------------------------------------------

    async def run_deliveries(self) -> None:
        """Claim and attempt due deliveries until stopped."""
        slots = asyncio.Semaphore(self.settings.webhook_concurrency)
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                while not self.stopping.is_set():
                    await slots.acquire()
                    claimed = await self.repo.claim(self.clock(), self.settings.webhook_lease_s)
                    if claimed is None:
                        slots.release()
                        break
                    task = asyncio.create_task(self._attempt_then_release(claimed, slots))
                    self._attempts.add(task)
                    task.add_done_callback(self._attempts.discard)
            except PyMongoError as exc:
                slots.release()
                log.warning("mongodb unreachable: deliveries wait",
                            extra={"error": str(exc)[:200]})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.webhook_poll_interval_s)

    async def _attempt_then_release(self, delivery: dict[str, Any],
                                    slots: asyncio.Semaphore) -> None:
        try:
            with self.in_flight.track():
                await self.attempt(delivery)
        except (PyMongoError, GridLinkError) as exc:  # its lease runs out: tried again
            log.warning("webhook attempt not recorded", extra={
                "delivery": delivery["_id"], "error": str(exc)[:200]})
        finally:
            slots.release()
            self.wake.set()  # a slot is free: more may be due

    async def attempt(self, delivery: dict[str, Any]) -> str:
        """One attempt of a claimed delivery, recorded; the delivery's new state."""
        now = self.clock()
        subscription = await self.repo.subscription(delivery["subscription"])
        if subscription is None or not subscription.get("active"):
            why = "subscription deleted" if subscription is None else "subscription inactive"
            await self.repo.record_attempt(delivery, _entry(now, Outcome(None, why, 0)),
                                           state=FAILED, next_attempt_at=None, failure=why)
            ATTEMPTS.labels("failed").inc()
            return FAILED
        secret = self.box.open(subscription["secret"])
        body = delivery["body"]
        headers = {rules.SIGNATURE_HEADER: rules.signature(secret, int(now.timestamp()),
                                                           body.encode()),
                   rules.EVENT_HEADER: delivery["event"],
                   rules.DELIVERY_HEADER: delivery["_id"]}
        outcome = await self.sender.attempt(subscription["url"], body, headers)
        ATTEMPT_SECONDS.observe(outcome.duration_ms / 1000)
        if outcome.error and outcome.error.startswith("refused"):
            REFUSED.inc()
            log.warning("webhook URL refused at delivery", extra={
                "subscription": subscription["_id"], "error": outcome.error})
        attempts = delivery.get("attempt_count", 0) + 1
        done = self.clock()
        age_s = (done - delivery["event_at"]).total_seconds()
        if outcome.delivered:
            state, nxt = DELIVERED, None
        elif rules.give_up(attempts, age_s, max_attempts=self.settings.webhook_max_attempts,
                           max_age_s=self.settings.webhook_max_age_s):
            state, nxt = FAILED, None
        else:
            state = PENDING
            nxt = done + timedelta(seconds=rules.backoff_s(
                attempts, self.settings.webhook_backoff_base_s,
                self.settings.webhook_backoff_max_s, self.rng))
        failure = None if state != FAILED else (
            f"gave up after {attempts} attempts" if attempts >= self.settings.webhook_max_attempts
            else "too old")
        recorded = await self.repo.record_attempt(delivery, _entry(now, outcome), state=state,
                                                  next_attempt_at=nxt, failure=failure)
        ATTEMPTS.labels("delivered" if state == DELIVERED else
                        "failed" if state == FAILED else "retry").inc()
        async with self.recorded:
            self.recorded.notify_all()
        log.log(logging.INFO if state == DELIVERED else logging.WARNING, "webhook attempt",
                extra={"subscription": subscription["_id"], "delivery": delivery["_id"],
                       "event": delivery["event"], "status": outcome.status,
                       "error": outcome.error, "state": state, "attempt": attempts,
                       "recorded": recorded})
        return state


def _entry(at: datetime, outcome: Outcome) -> dict[str, Any]:
    """An attempt as the delivery log keeps it."""
    return {"at": at, "duration_ms": outcome.duration_ms, "status": outcome.status,
            "error": outcome.error, "response": outcome.response}


def _time(text: Any, default: datetime) -> datetime:
    try:
        return parse_time(str(text))
    except ValueError:
        return default
