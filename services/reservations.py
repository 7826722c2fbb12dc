"""Reservations (OCPP 1.6 Reservation profile, §3.11 / §5.1 / §5.13): the stored documents,
the rules GridLink checks before a ReserveNow is sent, and how reservations end.

Shared by the commands service (``commands/features/reservations.py``) and the CLI
(``gridlink reserve``, ``gridlink reservations``).

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
requester chose itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services import id_tags
from services.ocpp16 import iso

COLLECTION = "reservations"
COUNTERS = "counters"
COUNTER_KEY = "reservation_id"
CONNECTOR_STATUS = "connector_status"  # latest StatusNotification per "STATION/N"
CONFIGURATION = "station_configuration"  # GetConfiguration snapshots
MAX_ID = 2**31 - 1

ACTIVE, USED, CANCELLED, EXPIRED, TERMINATED = (
    "active", "used", "cancelled", "expired", "terminated")
STATUSES = (ACTIVE, USED, CANCELLED, EXPIRED, TERMINATED)
#: Connector statuses that end a reservation on it (§5.13 (3)).
ENDING_CONNECTOR_STATUSES = frozenset({"Faulted", "Unavailable"})

INDEXES = {
    COLLECTION: [
        IndexModel([("station", ASCENDING), ("status", ASCENDING), ("connector", ASCENDING)]),
        IndexModel([("status", ASCENDING), ("expiry", ASCENDING)]),
    ],
}

Db = AsyncDatabase[dict[str, Any]]


# --- rules ----------------------------------------------------------------------------------


def _same_token(a: str | None, b: str | None) -> bool:
    """IdToken is CiString20: compared case-insensitively."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def tag_matches(reservation: dict[str, Any], id_tag: str, parent: str | None) -> bool:
    """May ``id_tag`` (with group ``parent``) use the reservation? Its idTag or its parent
    idTag must match the reservation's idTag or parent idTag (§5.13)."""
    held = (reservation.get("id_tag"), reservation.get("parent_id_tag"))
    return any(_same_token(mine, theirs) for mine in (id_tag, parent) for theirs in held)


@dataclass(frozen=True)
class StationFacts:
    """What GridLink knows about a station's connectors and reservation support."""

    seen_connectors: frozenset[int]  # connectors that sent a StatusNotification
    number_of_connectors: int | None = None  # NumberOfConnectors (GetConfiguration)
    zero_supported: bool | None = None  # ReserveConnectorZeroSupported; None: not known
    profile_supported: bool | None = None  # Reservation in SupportedFeatureProfiles


def _config_value(snapshot: dict[str, Any] | None, key: str) -> str | None:
    for entry in (snapshot or {}).get("keys", []):
        if entry.get("key") == key and entry.get("value") is not None:
            return str(entry["value"]).strip()
    return None


def facts_from(snapshot: dict[str, Any] | None, seen_connectors: set[int]) -> StationFacts:
    """StationFacts from a configuration snapshot and the connectors seen."""
    number = _config_value(snapshot, "NumberOfConnectors")
    zero = _config_value(snapshot, "ReserveConnectorZeroSupported")
    zero_supported = zero.lower() == "true" if zero is not None else None
    if zero is None and "ReserveConnectorZeroSupported" in (snapshot or {}).get(
            "unknown_keys", []):
        zero_supported = False  # "not set" means not supported (§5.13)
    profiles = _config_value(snapshot, "SupportedFeatureProfiles")
    return StationFacts(
        seen_connectors=frozenset(seen_connectors),
        number_of_connectors=int(number) if number is not None and number.isdigit() else None,
        zero_supported=zero_supported,
        profile_supported=("reservation" in {p.strip().lower() for p in profiles.split(",")}
                           if profiles is not None else None),
    )


def connector_refusal(station: str, connector: int, facts: StationFacts
                      ) -> tuple[str, str] | None:
    """Why ``connector`` cannot be reserved, as (code, description); None if it can.

    A connector > 0 must exist: it sent a StatusNotification or is within
    NumberOfConnectors. Connector 0 (any connector) needs ReserveConnectorZeroSupported =
    true; the charger rejects it otherwise (§5.13), so it is only sent when known.
    """
    if facts.profile_supported is False:
        return ("NotSupported",
                f"{station} does not list Reservation in SupportedFeatureProfiles")
    if connector < 0:
        return ("PropertyConstraintViolation", "connectorId must be >= 0")
    if connector == 0:
        if facts.zero_supported:
            return None
        known = "false" if facts.zero_supported is False else "not known"
        return ("ConnectorZeroNotSupported",
                f"{station} ReserveConnectorZeroSupported is {known}; reserve a connector > 0"
                " (or read the key with GetConfiguration first)")
    if connector in facts.seen_connectors:
        return None
    if facts.number_of_connectors is not None and connector <= facts.number_of_connectors:
        return None
    return ("UnknownConnector", f"{station} has no connector {connector} (seen: "
            f"{', '.join(map(str, sorted(facts.seen_connectors))) or 'none'})")


def reserve_now_payload(*, connector: int, id_tag: str, expiry: datetime, reservation_id: int,
                        parent_id_tag: str | None) -> dict[str, Any]:
    """A ReserveNow.req payload (camelCase)."""
    payload: dict[str, Any] = {"connectorId": connector, "expiryDate": iso(expiry),
                               "idTag": id_tag, "reservationId": reservation_id}
    if parent_id_tag:
        payload["parentIdTag"] = parent_id_tag
    return payload


# --- reads ----------------------------------------------------------------------------------


async def station_facts(db: Db, station: str) -> StationFacts:
    seen = {int(doc["connector"]) async for doc in db[CONNECTOR_STATUS].find(
        {"station": station}, {"connector": 1})}
    seen.discard(0)  # connector 0 is the charge point itself
    snapshot = await db[CONFIGURATION].find_one({"_id": station})
    return facts_from(snapshot, seen)


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


async def allocate_id(db: Db) -> int:
    """A reservationId never handed out before (skips ids requesters chose themselves)."""
    while True:
        counter = await db[COUNTERS].find_one_and_update(
            {"_id": COUNTER_KEY}, {"$inc": {"value": 1}}, upsert=True,
            return_document=ReturnDocument.AFTER)
        assert counter is not None
        value = int(counter["value"])
        if value > MAX_ID:
            raise OverflowError("reservation ids exhausted (int32)")
        if await db[COLLECTION].find_one({"_id": value}, {"_id": 1}) is None:
            return value


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


async def consume_on_start(db: Db, event: dict[str, Any], at: datetime) -> str:
    """A ``transaction.started`` event: end the reservation it used, or note a conflict.

    - with a reservationId of this station: that reservation is ``used`` (the charger ended
      it, §5.13), even if it had expired here meanwhile;
    - without one, by the reserved tag (or its group) on the reserved connector, or on any
      connector for a connector-0 reservation: ``used`` as well (the charger must end it);
    - by another tag on a reserved connector: the charger should have refused (§5.13); the
      reservation stays, the transaction is recorded in its ``conflicts``.

    Idempotent (events arrive at least once). Returns what happened, for the log.
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
