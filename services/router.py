"""Per-action handler registration on a Router instance, and the one pipeline every call takes.

``router.dispatch(call)``: look up the route, validate the payload against the 1.6 request
schema (again), build the typed request (``ocpp.v16.call``), call ``handler(request,
context)``, turn the typed response into a payload, validate it against the 1.6 response
schema, and return a :class:`Dispatched`: the :class:`CallReply` and the events the handler
emitted (``context.emit(...)``), which the runtime publishes once the reply is confirmed.
An :class:`OcppError` becomes a CALLERROR. A transient failure (:class:`StoreUnavailable`,
a timeout, a primary stepping down: :func:`services.failures.is_transient`) propagates:
the caller retries, with a fresh context, and never answers. Any other exception can never
succeed (a value MongoDB cannot store, a bug): the call is answered CALLERROR
``InternalError`` with a short description, counted in
``gridlink_service_handler_failures_total`` and logged with the station (the traceback once
per action and reason in a process), so the message is acknowledged, not requeued until the
broker dead-letters it. Its events are not published (its work did not finish).

The gateway validated the call already, but a service trusts nothing it reads from the
broker: a message published there by anyone else (``{"transactionId": {"$in": [12, 14]}}``
would be a MongoDB query operator in a handler's filter) is answered with the 1.6 CALLERROR
its payload earns and never reaches a handler. The check is the gateway's own
(:func:`services.ocpp16.check_charger_call`, schemas compiled once per process), a few
microseconds per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.errors import OperationFailure

from services import events, failures, ocpp16
from services.envelope import CallReply, ChargerCall
from services.errors import InternalError, NotSupported, OcppError
from services.metrics import HANDLED, HANDLER_FAILURES, HANDLER_LATENCY
from services.topology import Lane

log = logging.getLogger("gridlink.router")


@dataclass(frozen=True)
class Event:
    """Something that happened, for ``{ns}.events``: ``transaction.started`` and its body."""

    routing_key: str
    body: dict[str, Any]


@dataclass
class CallContext:
    """What a handler knows about the call besides its payload, and the events it emits."""

    station: str
    unique_id: str
    received_at: datetime
    session: str
    events: list[Event] = field(default_factory=list)

    def emit(self, routing_key: str, body: dict[str, Any], *identity: object) -> None:
        """Publish an event once the reply is confirmed (so nobody reacts before the charger
        has its answer); a retried call emits again (events are at least once), with the
        same ``event_id``: derived from ``identity`` (what names the fact), by default from
        this call and the event's place among its events (:mod:`services.events`)."""
        if not identity:
            identity = (self.station, self.session, self.unique_id, len(self.events))
        self.events.append(Event(routing_key, events.stamped(routing_key, body, *identity)))


@dataclass(frozen=True)
class Dispatched:
    """The outcome of one call: the reply (None when the gateway answered already) and the
    events its handler emitted."""

    reply: CallReply | None
    events: tuple[Event, ...] = ()


Handler = Callable[[Any, CallContext], Awaitable[Any]]


class Router:
    """Handlers by action for one service (an instance, not a module-global registry)."""

    def __init__(self, component: str) -> None:
        self.component = component
        self._routes: dict[str, Handler] = {}
        self._lanes: dict[str, Lane] = {}
        self._traced: set[tuple[str, str]] = set()  # (action, reason) logged with a traceback
        self._counted: dict[tuple[str, str], Any] = {}  # metric children, looked up once

    def on(self, action: str, *, lane: Lane = "work") -> Callable[[Handler], Handler]:
        """Decorator: ``@router.on("Authorize")``. ``lane="rpc"``: a question someone waits
        on and that changes nothing, taken from the service's fast lane."""
        if action not in ocpp16.CHARGER_ACTIONS:
            raise ValueError(f"{action} is not a charger-initiated OCPP 1.6 action")

        def register(handler: Handler) -> Handler:
            self._routes[action] = handler
            self._lanes[action] = lane
            return handler

        return register

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(self._routes)

    @property
    def lanes(self) -> dict[str, Lane]:
        """The lane each handled action is consumed from."""
        return dict(self._lanes)

    async def dispatch(self, message: ChargerCall) -> Dispatched:
        """Handle one call."""
        started = time.perf_counter()
        context = CallContext(
            message.station, message.unique_id, message.received_at, message.session
        )
        outcome = "ok"
        try:
            handler = self._routes.get(message.action)
            if handler is None:
                raise NotSupported(f"{message.action} is not handled by {self.component}")
            try:
                ocpp16.check_charger_call(message.action, message.payload)
            except OcppError as exc:
                log.warning("charger call failed validation at the service (not published "
                            "by a gateway?)", extra={"station": message.station,
                                                     "action": message.action,
                                                     "error": exc.description})
                raise
            request = ocpp16.request_model(message.action, message.payload)
            response = await handler(request, context)
            payload = ocpp16.response_payload(response)
            try:
                ocpp16.validate(ocpp16.CALLRESULT, message.action, payload)
            except OcppError as exc:
                raise InternalError(f"invalid response built: {exc.description}") from None
            reply = CallReply(
                station=message.station, session=message.session,
                unique_id=message.unique_id, payload=payload,
            )
        except OcppError as exc:
            outcome = exc.code
            if isinstance(exc, InternalError):
                log.error("handler produced an invalid response",
                          extra={"station": message.station, "action": message.action,
                                 "error": exc.description})
            reply = CallReply(
                station=message.station, session=message.session, unique_id=message.unique_id,
                error_code=exc.code, error_description=exc.description,
            )
        except Exception as exc:
            if failures.is_transient(exc):
                outcome = "exception"
                raise
            outcome = "failed"
            reply = self._failed(message, exc)
            context.events.clear()
        finally:
            self._count(message.action, outcome, time.perf_counter() - started)
        return Dispatched(None if message.answered else reply, tuple(context.events))

    def _count(self, action: str, outcome: str, seconds: float) -> None:
        """Count a handled call and its latency (the label lookups once per action and
        outcome: a known action's; an unknown one's are looked up each time, unbounded)."""
        children = self._counted.get((action, outcome))
        if children is None:
            children = (HANDLED.labels(self.component, action, outcome),
                        HANDLER_LATENCY.labels(self.component, action))
            if action in self._routes:
                self._counted[(action, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def _failed(self, message: ChargerCall, exc: Exception) -> CallReply:
        """The CALLERROR for a call whose handling failed for good; counted and logged."""
        reason = failures.reason(exc)
        HANDLER_FAILURES.labels(self.component, message.action, reason).inc()
        # The traceback once per action and reason; never for a server's refusal, whose text
        # holds the documents (id tags): its reason names the error code.
        key = (message.action, reason)
        traced = not isinstance(exc, OperationFailure) and key not in self._traced
        self._traced.add(key)
        log.error("call failed for a reason retrying cannot mend; answered InternalError",
                  exc_info=exc if traced else None,
                  extra={"station": message.station, "action": message.action,
                         "unique_id": message.unique_id, "reason": reason})
        return CallReply(station=message.station, session=message.session,
                         unique_id=message.unique_id, error_code=InternalError.code,
                         error_description=failures.charger_description(exc))
