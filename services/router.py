"""Per-action handler registration on a Router instance, and the one pipeline every call takes.

``router.dispatch(call)``: look up the route, build the typed request (``ocpp.v16.call``),
call ``handler(request, context)``, turn the typed response into a payload, validate it
against the 1.6 response schema, return a :class:`CallReply`. An :class:`OcppError` becomes a
CALLERROR; :class:`StoreUnavailable` propagates (the caller retries and never answers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services import ocpp16
from services.envelope import CallReply, ChargerCall
from services.errors import InternalError, NotSupported, OcppError
from services.metrics import HANDLED, HANDLER_LATENCY

log = logging.getLogger("gridlink.router")


@dataclass(frozen=True)
class CallContext:
    """What a handler knows about the call besides its payload."""

    station: str
    unique_id: str
    received_at: datetime
    session: str


Handler = Callable[[Any, CallContext], Awaitable[Any]]
#: Publishes an event on ``{ns}.events``: ``await events("transaction.started", {...})``.
EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]


class Router:
    """Handlers by action for one service (an instance, not a module-global registry)."""

    def __init__(self, component: str) -> None:
        self.component = component
        self._routes: dict[str, Handler] = {}

    def on(self, action: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@router.on("Authorize")``."""
        if action not in ocpp16.CHARGER_ACTIONS:
            raise ValueError(f"{action} is not a charger-initiated OCPP 1.6 action")

        def register(handler: Handler) -> Handler:
            self._routes[action] = handler
            return handler

        return register

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def dispatch(self, message: ChargerCall) -> CallReply | None:
        """Handle one call; ``None`` when the gateway already answered it."""
        started = time.perf_counter()
        context = CallContext(
            message.station, message.unique_id, message.received_at, message.session
        )
        outcome = "ok"
        try:
            handler = self._routes.get(message.action)
            if handler is None:
                raise NotSupported(f"{message.action} is not handled by {self.component}")
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
        except Exception:
            outcome = "exception"
            raise
        finally:
            HANDLED.labels(self.component, message.action, outcome).inc()
            HANDLER_LATENCY.labels(self.component, message.action).observe(
                time.perf_counter() - started
            )
        return None if message.answered else reply
