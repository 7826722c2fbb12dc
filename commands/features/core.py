"""Core profile commands: availability, configuration snapshots, remote start/stop checks.

- ChangeAvailability: the requested availability per connector is stored with the charger's
  answer; ``Scheduled`` (and ``Accepted``) stay unconfirmed until the connector's
  StatusNotification shows it (Unavailable for Inoperative, anything else for Operative).
- GetConfiguration / ChangeConfiguration: a per-station snapshot of configuration keys
  (value, read-only) from GetConfiguration answers, with the keys the charger called
  unknown; a change to a key the charger reported read-only is refused before sending.
- RemoteStartTransaction: connectorId > 0 and a charging profile only as TxProfile (§5.11).
- RemoteStopTransaction: the transaction must be known, active, and on that station.
- UnlockConnector: connectorId > 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import IndexModel

from commands.features import CommandHooks, CommandRefused
from services.envelope import CommandRequest
from services.ocpp16 import parse_time, utcnow
from services.read_batcher import ReadBatcher
from services.runtime import ServiceRuntime

AVAILABILITY = "availability"
CONFIGURATION = "station_configuration"


def availability_confirmed(requested: str, status: str) -> bool:
    """Does a connector status show the requested availability?"""
    return (status == "Unavailable") == (requested == "Inoperative")


def merge_configuration(snapshot: dict[str, Any] | None, request: dict[str, Any],
                        response: dict[str, Any]) -> dict[str, Any]:
    """A new snapshot from a GetConfiguration answer (a full answer replaces the keys)."""
    keys: dict[str, dict[str, Any]] = {}
    unknown: set[str] = set()
    if snapshot is not None and request.get("key"):
        keys = {k["key"]: k for k in snapshot.get("keys", [])}
        unknown = set(snapshot.get("unknown_keys", []))
    for entry in response.get("configurationKey", []):
        keys[entry["key"]] = {"key": entry["key"], "value": entry.get("value"),
                              "readonly": bool(entry.get("readonly"))}
        unknown.discard(entry["key"])
    unknown.update(response.get("unknownKey", []))
    return {"keys": sorted(keys.values(), key=lambda k: k["key"]),
            "unknown_keys": sorted(unknown)}


def register(hooks: CommandHooks) -> None:
    runtime = hooks.runtime
    db = runtime.store.db
    reads = ReadBatcher(db)  # every StatusNotification asks; storms ask thousands at once
    hooks.add_indexes({AVAILABILITY: [IndexModel("station")], CONFIGURATION: []})

    # --- ChangeAvailability ---------------------------------------------------------------

    @hooks.after("ChangeAvailability")
    async def availability_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] not in ("accepted", "rejected"):
            return
        payload = command["payload"]
        key = f"{command['station']}/{payload['connectorId']}"
        sent = [h["at"] for h in command.get("history", []) if h["status"] == "sent"]
        requested_at = sent[0] if sent else command["created_at"]
        answer = (command.get("response") or {}).get("status")
        await rt.with_store(lambda: db[AVAILABILITY].update_one(
            {"_id": key},
            {"$set": {"station": command["station"], "connector": payload["connectorId"],
                      "requested": payload["type"], "answer": answer,
                      "requested_at": requested_at, "command_id": command["_id"],
                      "confirmed": False, "confirmed_at": None}},
            upsert=True))
        # The StatusNotification may have been processed before this answer: look at it.
        current = await rt.with_store(lambda: db["connector_status"].find_one({"_id": key}))
        if current is not None:
            await confirm(rt, key, current["status"], current["received_at"])

    async def confirm(rt: ServiceRuntime, key: str, status: str, seen_at: datetime) -> None:
        document = await rt.with_store(lambda: reads.find_one(AVAILABILITY, "_id", key))
        if document is None or document["confirmed"] or document["answer"] == "Rejected":
            return
        if seen_at < document["requested_at"]:
            return  # a status received before the request proves nothing
        if availability_confirmed(document["requested"], status):
            await rt.with_store(lambda: db[AVAILABILITY].update_one(
                {"_id": key, "confirmed": False},
                {"$set": {"confirmed": True, "confirmed_at": seen_at}}))

    @hooks.on_event("station.status")
    async def status_seen(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        seen_at = parse_time(event.get("received_at") or event["at"])
        await confirm(rt, f"{event['station']}/{event['connector']}", event["status"], seen_at)

    # --- configuration --------------------------------------------------------------------

    @hooks.after("GetConfiguration")
    async def configuration_read(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return
        station = command["station"]
        snapshot = await rt.with_store(lambda: db[CONFIGURATION].find_one({"_id": station}))
        merged = merge_configuration(snapshot, command["payload"], command["response"] or {})
        await rt.with_store(lambda: db[CONFIGURATION].update_one(
            {"_id": station}, {"$set": {**merged, "updated_at": utcnow()}}, upsert=True))

    @hooks.validate("ChangeConfiguration")
    async def not_read_only(rt: ServiceRuntime, request: CommandRequest) -> None:
        key = request.payload["key"]
        snapshot = await rt.with_store(lambda: db[CONFIGURATION].find_one(
            {"_id": request.station}))
        for entry in (snapshot or {}).get("keys", []):
            if entry["key"] == key and entry["readonly"]:
                raise CommandRefused("ReadOnly", f"{key} is read-only on {request.station}")

    @hooks.after("ChangeConfiguration")
    async def configuration_changed(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        answer = (command.get("response") or {}).get("status")
        station, key = command["station"], command["payload"]["key"]
        if answer not in ("Accepted", "RebootRequired", "NotSupported"):
            return
        snapshot = await rt.with_store(lambda: db[CONFIGURATION].find_one({"_id": station}))
        keys = {k["key"]: k for k in (snapshot or {}).get("keys", [])}
        unknown = set((snapshot or {}).get("unknown_keys", []))
        if answer == "NotSupported":
            unknown.add(key)
            keys.pop(key, None)
        else:
            keys[key] = {"key": key, "value": command["payload"]["value"], "readonly": False,
                         "reboot_required": answer == "RebootRequired"}
        await rt.with_store(lambda: db[CONFIGURATION].update_one(
            {"_id": station},
            {"$set": {"keys": sorted(keys.values(), key=lambda k: k["key"]),
                      "unknown_keys": sorted(unknown), "updated_at": utcnow()}},
            upsert=True))

    # --- remote start / stop, unlock ------------------------------------------------------

    @hooks.validate("RemoteStartTransaction")
    async def remote_start_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        if request.payload.get("connectorId") == 0:
            raise CommandRefused("PropertyConstraintViolation", "connectorId must be > 0")
        profile = request.payload.get("chargingProfile")
        if profile is not None:
            if profile.get("chargingProfilePurpose") != "TxProfile":
                raise CommandRefused("PropertyConstraintViolation",
                                     "a RemoteStartTransaction profile must be a TxProfile")
            if "transactionId" in profile:
                raise CommandRefused("PropertyConstraintViolation",
                                     "a RemoteStartTransaction profile has no transactionId")

    @hooks.validate("RemoteStopTransaction")
    async def remote_stop_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        transaction_id = request.payload["transactionId"]
        transaction = await rt.with_store(lambda: db["transactions"].find_one(
            {"_id": transaction_id}, {"station": 1, "active": 1}))
        if transaction is None or transaction["station"] != request.station:
            raise CommandRefused("UnknownTransaction",
                                 f"no transaction {transaction_id} on {request.station}")
        if not transaction.get("active"):
            raise CommandRefused("TransactionStopped",
                                 f"transaction {transaction_id} has already stopped")

    @hooks.validate("UnlockConnector")
    async def unlock_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        if request.payload["connectorId"] <= 0:
            raise CommandRefused("PropertyConstraintViolation", "connectorId must be > 0")
