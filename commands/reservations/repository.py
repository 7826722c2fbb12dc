"""The stored reservations (OCPP 1.6 Reservation profile) and how they end.

Written by the commands service (``commands/reservations/hooks.py``) and read by the CLI
(``gridlink reserve``, ``gridlink reservations``); the rules are
:mod:`commands.reservations.rules`.

Collection ``reservations``, one document per reservationId (an id belongs to one station)::

    {_id: reservationId, station, connector, id_tag, parent_id_tag, expiry,
     status: active | used | cancelled | expired | terminated,
     command_id, reserved_at, ended_at, ended_reason,
     transaction_id, used_by,              # when a StartTransaction consumed it
     conflicts: [{transaction_id, id_tag, at}]}  # another tag charged on its connector

A reservation is stored when the charger answers ReserveNow ``Accepted`` (a ReserveNow with
the id of an existing reservation of the same station replaces it, §5.13). It ends:
``used`` by a StartTransaction carrying its id (or by the reserved tag / its group on the
reserved connector, which must end it too); ``cancelled`` by an Accepted CancelReservation;
``expired`` at its expiryDate; ``terminated`` when the connector (or, connector 0, the
station) turns Faulted or Unavailable, or the charger answers CancelReservation Rejected
(it holds no such reservation).

Ids come from the ``counters`` document ``reservation_id`` (``$inc``), skipping any id a
requester chose itself (:mod:`services.reservation_ids`, shared with the CLI and the HTTP API).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from commands import station_configuration
from commands.reservations.rules import (
    ACTIVE,
    ENDING_CONNECTOR_STATUSES,
    EXPIRED,
    TERMINATED,
    USED,
    StationFacts,
    facts_from,
    tag_matches,
)
from services import id_tags, transaction_records
from services.command_records import RESERVATIONS
from services.ocpp16 import iso
from services.read_batcher import ReadBatcher

COLLECTION = RESERVATIONS

INDEXES = {
    COLLECTION: [
        IndexModel([("station", ASCENDING), ("status", ASCENDING), ("connector", ASCENDING)]),
        IndexModel([("status", ASCENDING), ("expiry", ASCENDING)]),
    ],
}

Db = AsyncDatabase[dict[str, Any]]


async def station_facts(db: Db, station: str) -> StationFacts:
    seen = await transaction_records.seen_connectors(db, station)
    seen.discard(0)  # connector 0 is the charge point itself
    return facts_from(await station_configuration.read_document(db, station), seen)


async def get(db: Db, reservation_id: int) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": reservation_id})


async def active_on_connector(db: Db, station: str, connector: int, now: datetime
                              ) -> list[dict[str, Any]]:
    cursor = db[COLLECTION].find({"station": station, "connector": connector,
                                  "status": ACTIVE, "expiry": {"$gt": now}})
    return await cursor.to_list()


async def parent_of(db: Db, id_tag: str) -> str | None:
    document = await db[id_tags.COLLECTION].find_one({"_id": id_tag}, {"parent": 1})
    return (document or {}).get("parent") or None


async def list_rows(db: Db, station: str | None, status: str | None) -> list[dict[str, Any]]:
    """Reservations as CLI rows, newest id first."""
    query: dict[str, Any] = {}
    if station:
        query["station"] = station
    if status:
        query["status"] = status
    rows = []
    async for doc in db[COLLECTION].find(query, sort=[("_id", -1)]):
        rows.append({
            "reservationId": doc["_id"], "station": doc["station"],
            "connector": doc["connector"], "idTag": doc["id_tag"],
            "parentIdTag": doc.get("parent_id_tag"), "expiry": iso(doc["expiry"]),
            "status": doc["status"], "transactionId": doc.get("transaction_id"),
            "endedReason": doc.get("ended_reason"),
        })
    return rows


# --- writes ---------------------------------------------------------------------------------


async def record_reserved(db: Db, command: dict[str, Any], now: datetime,
                          expiry: datetime) -> bool:
    """The charger accepted a ReserveNow: store (or replace) the reservation. Idempotent per
    command: running it again for the same command changes nothing (False)."""
    payload = command["payload"]
    fields = {
        "station": command["station"], "connector": payload["connectorId"],
        "id_tag": payload["idTag"], "parent_id_tag": payload.get("parentIdTag"),
        "expiry": expiry, "status": ACTIVE, "command_id": command["_id"], "reserved_at": now,
        "ended_at": None, "ended_reason": None, "transaction_id": None, "used_by": None,
        "conflicts": [],
    }
    try:
        result = await db[COLLECTION].update_one(
            {"_id": payload["reservationId"], "station": command["station"],
             "command_id": {"$ne": command["_id"]}},
            {"$set": fields}, upsert=True)
    except DuplicateKeyError:
        return False  # this command was recorded already (or the id is another station's)
    return result.modified_count == 1 or result.upserted_id is not None


async def end(db: Db, reservation_id: int, status: str, reason: str, at: datetime, *,
              from_statuses: tuple[str, ...] = (ACTIVE,), extra: dict[str, Any] | None = None
              ) -> bool:
    """End a reservation if it is still in ``from_statuses``."""
    result = await db[COLLECTION].update_one(
        {"_id": reservation_id, "status": {"$in": list(from_statuses)}},
        {"$set": {"status": status, "ended_at": at, "ended_reason": reason, **(extra or {})}})
    return result.modified_count == 1


async def expire_due(db: Db, now: datetime) -> int:
    """Mark every active reservation past its expiry ``expired``; how many."""
    result = await db[COLLECTION].update_many(
        {"status": ACTIVE, "expiry": {"$lte": now}},
        {"$set": {"status": EXPIRED, "ended_at": now, "ended_reason": "expiryDate reached"}})
    return int(result.modified_count)


async def consume_on_start(db: Db, event: dict[str, Any], at: datetime,
                           reads: ReadBatcher | None = None) -> str:
    """A ``transaction.started`` event: end the reservation it used, or note a conflict.

    - with a reservationId of this station: that reservation is ``used`` (the charger ended
      it, §5.13), even if it had expired here meanwhile;
    - without one, by the reserved tag (or its group) on the reserved connector, or on any
      connector for a connector-0 reservation: ``used`` as well (the charger must end it);
    - by another tag on a reserved connector: the charger should have refused (§5.13); the
      reservation stays, the transaction is recorded in its ``conflicts``.

    Idempotent (events arrive at least once). Returns what happened, for the log. With
    ``reads``, the look for active reservations is shared with concurrent events (every
    start asks; almost always there is none).
    """
    station, connector = event["station"], int(event["connector"])
    transaction_id, id_tag = event["transaction_id"], event["id_tag"]
    usage = {"transaction_id": transaction_id, "used_by": id_tag, "used_on": connector}
    reservation_id = event.get("reservation_id")
    if reservation_id is not None:
        found = await get(db, reservation_id)
        if found is None or found["station"] != station:
            return "unknown-reservation"
        if found.get("transaction_id") == transaction_id:
            return "already-used"
        done = await end(db, reservation_id, USED, "StartTransaction with its reservationId",
                         at, from_statuses=(ACTIVE, EXPIRED), extra=usage)
        return "used" if done else "already-ended"
    if reads is not None:
        active = await reads.find(COLLECTION, "station", station, where={"status": ACTIVE})
        candidates = sorted((found for found in active if found.get("connector") in (connector, 0)
                             and found["reserved_at"] <= at),
                            key=lambda found: -int(found["connector"]))
    else:
        cursor = db[COLLECTION].find({"station": station, "status": ACTIVE,
                                      "connector": {"$in": [connector, 0]},
                                      "reserved_at": {"$lte": at}}, sort=[("connector", -1)])
        candidates = await cursor.to_list()
    if not candidates:
        return "none"
    parent = await parent_of(db, id_tag)
    for reservation in candidates:
        if tag_matches(reservation, id_tag, parent):
            await end(db, reservation["_id"], USED,
                      "StartTransaction by the reserved tag without reservationId", at,
                      extra=usage)
            return "used"
    for reservation in candidates:
        if reservation["connector"] == connector:
            await db[COLLECTION].update_one(
                {"_id": reservation["_id"], "conflicts.transaction_id": {"$ne": transaction_id}},
                {"$push": {"conflicts": {"transaction_id": transaction_id, "id_tag": id_tag,
                                         "at": at}}})
            return "conflict"
    return "none"


async def terminate_on_status(db: Db, station: str, connector: int, status: str,
                              at: datetime) -> int:
    """A connector (connector 0: the station) turned Faulted/Unavailable at ``at``: its
    reservations made before then end ``terminated`` (§5.13 (3)); how many."""
    if status not in ENDING_CONNECTOR_STATUSES:
        return 0
    query: dict[str, Any] = {"station": station, "status": ACTIVE, "reserved_at": {"$lte": at}}
    if connector != 0:
        query["connector"] = connector
    result = await db[COLLECTION].update_many(
        query, {"$set": {"status": TERMINATED, "ended_at": at,
                         "ended_reason": f"connector {connector} became {status}"}})
    return int(result.modified_count)
