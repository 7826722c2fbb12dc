"""Core profile commands wired into the command path.

- ChangeAvailability: the requested availability per connector is stored with the charger's
  answer; ``Scheduled`` (and ``Accepted``) stay unconfirmed until the connector's
  StatusNotification shows it (Unavailable for Inoperative, anything else for Operative).
- GetConfiguration / ChangeConfiguration: the station's configuration snapshot
  (:mod:`commands.station_configuration`) follows the answers, secret values redacted; a
  change to a key the charger reported read-only is refused before sending (what
  AuthorizationKey and SecurityProfile changes do besides: :mod:`commands.credentials.hooks`).
- RemoteStartTransaction, RemoteStopTransaction, UnlockConnector: :mod:`commands.core.rules`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commands import station_configuration
from commands.core import rules
from commands.core.repository import INDEXES, AvailabilityRepository
from commands.hooks import CommandHooks, refuse
from commands.lifecycle import Lifecycle
from commands.repository import first_sent_at
from services import transaction_records
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.ocpp16 import parse_time, utcnow
from services.runtime import ServiceRuntime


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    db = hooks.runtime.store.db
    availability = AvailabilityRepository(db)
    hooks.add_indexes(INDEXES)
    hooks.add_indexes({station_configuration.COLLECTION: []})

    # --- ChangeAvailability ---------------------------------------------------------------

    @hooks.after("ChangeAvailability")
    async def availability_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] not in ("accepted", "rejected"):
            return
        payload, station = command["payload"], command["station"]
        key = transaction_records.connector_key(station, payload["connectorId"])
        answer = (command.get("response") or {}).get("status")
        await rt.with_store(lambda: availability.requested(
            key, station=station, connector=payload["connectorId"], requested=payload["type"],
            answer=answer, at=first_sent_at(command), command_id=command["_id"]))
        # The StatusNotification may have been processed before this answer: look at it.
        current = await rt.with_store(lambda: transaction_records.latest_status(
            db, station, payload["connectorId"]))
        if current is not None:
            await confirm(rt, key, current["status"], current["received_at"])

    async def confirm(rt: ServiceRuntime, key: str, status: str, seen_at: datetime) -> None:
        document = await rt.with_store(lambda: availability.get(key))
        if document is None or document["confirmed"] or document["answer"] == "Rejected":
            return
        if seen_at < document["requested_at"]:
            return  # a status received before the request proves nothing
        if rules.availability_confirmed(document["requested"], status):
            await rt.with_store(lambda: availability.confirm(key, seen_at))

    @hooks.on_event("station.status")
    async def status_seen(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        seen_at = parse_time(event.get("received_at") or event["at"])
        key = transaction_records.connector_key(event["station"], event["connector"])
        await confirm(rt, key, event["status"], seen_at)

    # --- configuration --------------------------------------------------------------------

    @hooks.after("GetConfiguration")
    async def configuration_read(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return
        station = command["station"]
        snapshot = await rt.with_store(lambda: station_configuration.read_document(db, station))
        merged = station_configuration.merge_answer(snapshot, command["payload"],
                                                    command["response"] or {})
        await rt.with_store(lambda: station_configuration.save(db, station, merged, utcnow()))

    @hooks.validate("ChangeConfiguration")
    async def not_read_only(rt: ServiceRuntime, request: CommandRequest) -> None:
        key = request.payload["key"]
        snapshot = await rt.with_store(lambda: station_configuration.read(db, request.station))
        if snapshot.read_only(key):
            raise CommandRefused("ReadOnly", f"{key} is read-only on {request.station}")

    @hooks.after("ChangeConfiguration")
    async def configuration_changed(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        answer = (command.get("response") or {}).get("status")
        station, payload = command["station"], command["payload"]
        if answer not in ("Accepted", "RebootRequired", "NotSupported"):
            return
        snapshot = await rt.with_store(lambda: station_configuration.read_document(db, station))
        merged = station_configuration.merge_change(snapshot, payload["key"], payload["value"],
                                                    answer)
        await rt.with_store(lambda: station_configuration.save(db, station, merged, utcnow()))

    # --- remote start / stop, unlock ------------------------------------------------------

    @hooks.validate("RemoteStartTransaction")
    async def remote_start_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        refuse(rules.remote_start_problem(request.payload))

    @hooks.validate("RemoteStopTransaction")
    async def remote_stop_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        transaction_id = request.payload["transactionId"]
        transaction = await rt.with_store(lambda: transaction_records.get(
            db, transaction_id, ("station", "active")))
        refuse(rules.remote_stop_problem(transaction, transaction_id, request.station))

    @hooks.validate("UnlockConnector")
    async def unlock_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        refuse(rules.unlock_problem(request.payload))

