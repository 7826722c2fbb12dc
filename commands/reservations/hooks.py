"""Reservation profile: ReserveNow and CancelReservation with stored reservations.

The rules are :mod:`commands.reservations.rules`, the stored reservations
:mod:`commands.reservations.repository` (shared with the CLI). Here:

- ReserveNow is refused before it is recorded when the connector does not exist (never
  seen in ``connector_status`` and beyond NumberOfConnectors), is 0 on a station whose
  ReserveConnectorZeroSupported is false or not set (unknown: sent, the charger answers),
  is reserved already by another reservation,
  when the expiryDate has passed, the idTag is not Accepted, or the reservationId belongs
  to another station;
- CancelReservation is refused for a reservation GridLink does not hold active for that
  station;
- the charger's answers store, replace, cancel or end reservations;
- ``transaction.started`` consumes a reservation (see ``consume_on_start``);
  ``station.status`` Faulted/Unavailable ends the reservations on that connector;
- a background job marks reservations past their expiryDate ``expired``.

Authorize is answered by authz as for any tag: the charge point enforces a reservation
(§5.13: it refuses other tags on the reserved connector) and uses the ``parentIdTag`` of
Authorize.conf to recognise a group member.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from commands.hooks import CommandHooks, refuse
from commands.lifecycle import Lifecycle
from commands.reservations import repository as store
from commands.reservations import rules
from services import id_tags
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.ocpp16 import parse_time, utcnow
from services.read_batcher import ReadBatcher
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.reservations")

EXPIRY_SWEEP_INTERVAL_S = 1.0


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    db = hooks.runtime.store.db
    hooks.add_indexes(store.INDEXES)
    reads = ReadBatcher(db)  # every transaction.started looks for a reservation

    # --- before sending -------------------------------------------------------------------

    @hooks.validate("ReserveNow")
    async def reserve_now_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload, station = request.payload, request.station
        now = utcnow()
        try:
            expiry = parse_time(payload["expiryDate"])
        except ValueError:
            raise CommandRefused("PropertyConstraintViolation",
                                 "expiryDate is not a date-time") from None
        if expiry <= now:
            raise CommandRefused("PropertyConstraintViolation", "expiryDate is in the past")
        if payload["reservationId"] < 0:
            raise CommandRefused("PropertyConstraintViolation", "reservationId must be >= 0")
        facts = await rt.with_store(lambda: store.station_facts(db, station))
        refusal = rules.connector_refusal(station, payload["connectorId"], facts)
        refuse(refusal)
        existing = await rt.with_store(lambda: store.get(db, payload["reservationId"]))
        if existing is not None and existing["station"] != station:
            raise CommandRefused("ReservationIdInUse", f"reservationId "
                                 f"{payload['reservationId']} belongs to {existing['station']}")
        info = await rt.with_store(lambda: id_tags.id_tag_info(db, payload["idTag"], now))
        if info["status"] != "Accepted":
            raise CommandRefused("IdTagNotAccepted", f"idTag {payload['idTag']} is "
                                 f"{info['status']}; only an Accepted tag can reserve")
        if payload["connectorId"] > 0:
            held = await rt.with_store(lambda: store.active_on_connector(
                db, station, payload["connectorId"], now))
            others = [r["_id"] for r in held if r["_id"] != payload["reservationId"]]
            if others:
                raise CommandRefused("ConnectorReserved", f"{station} connector "
                                     f"{payload['connectorId']} is reserved (reservation "
                                     f"{others[0]}) until it is used, cancelled or expires")

    @hooks.validate("CancelReservation")
    async def cancel_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        reservation_id = request.payload["reservationId"]
        found = await rt.with_store(lambda: store.get(db, reservation_id))
        if found is None or found["station"] != request.station:
            raise CommandRefused("UnknownReservation",
                                 f"no reservation {reservation_id} on {request.station}")
        if found["status"] != rules.ACTIVE:
            raise CommandRefused("ReservationEnded",
                                 f"reservation {reservation_id} is {found['status']}")

    # --- after the charger's answer -------------------------------------------------------

    @hooks.after("ReserveNow")
    async def reserve_now_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        answer = (command.get("response") or {}).get("status")
        if command["status"] != "accepted" or answer != "Accepted":
            return  # declined, CALLERROR, timeout, offline: nothing was reserved
        expiry = parse_time(command["payload"]["expiryDate"])
        answered_at = command.get("updated_at") or utcnow()  # when the charger accepted
        if await rt.with_store(lambda: store.record_reserved(db, command, answered_at, expiry)):
            log.info("reservation stored", extra={
                "station": command["station"],
                "reservation_id": command["payload"]["reservationId"]})

    @hooks.after("CancelReservation")
    async def cancel_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        answer = (command.get("response") or {}).get("status")
        reservation_id = command["payload"]["reservationId"]
        if answer == "Accepted":
            await rt.with_store(lambda: store.end(
                db, reservation_id, rules.CANCELLED, "CancelReservation accepted", utcnow()))
        elif answer == "Rejected":  # §5.1: the charger holds no such reservation
            await rt.with_store(lambda: store.end(
                db, reservation_id, rules.TERMINATED,
                "the charger holds no such reservation (CancelReservation rejected)",
                utcnow()))

    # --- events ---------------------------------------------------------------------------

    @hooks.on_event("transaction.started")
    async def transaction_started(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        at = parse_time(str(event["at"]))
        outcome = await rt.with_store(lambda: store.consume_on_start(db, event, at, reads))
        if outcome == "conflict":
            log.warning("transaction by another tag on a reserved connector", extra={
                "station": event["station"], "connector": event["connector"],
                "transaction_id": event["transaction_id"]})
        elif outcome == "unknown-reservation":
            log.warning("StartTransaction names an unknown reservation", extra={
                "station": event["station"], "reservation_id": event.get("reservation_id")})

    @hooks.on_event("station.status")
    async def connector_status(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        if event.get("status") not in rules.ENDING_CONNECTOR_STATUSES:
            return
        at = parse_time(str(event["at"]))  # when it happened: an older status proves nothing
        ended = await rt.with_store(lambda: store.terminate_on_status(
            db, event["station"], int(event["connector"]), event["status"], at))
        if ended:
            log.info("reservations ended by connector status", extra={
                "station": event["station"], "count": ended})

    # --- expiry ---------------------------------------------------------------------------

    async def expire(rt: ServiceRuntime) -> None:
        while not rt.stopping.is_set():
            now = utcnow()
            expired = await rt.with_store(lambda now=now: store.expire_due(db, now))
            if expired:
                log.info("reservations expired", extra={"count": expired})
            await asyncio.sleep(EXPIRY_SWEEP_INTERVAL_S)

    hooks.background.append(expire)
