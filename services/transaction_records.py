"""Transactions and connector statuses as other components read them.

The transactions service writes both collections (``transactions/repository.py``); the
commands service and operator queries only read them, through the functions here, so the
collection names and the fields they read are spelled once::

    transactions      _id = transactionId: {station, connector, id_tag, meter_start,
                      start_time, reservation_id, id_tag_info, active, stop, energy_wh,
                      superseded: {by, at, received_at, energy_wh} (a newer start on the
                      connector closed it), flags: [short names to review], ...}
    connector_status  _id = "STATION/CONNECTOR": the latest StatusNotification
                      {station, connector, status, error_code, timestamp, received_at, ...}
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

TRANSACTIONS = "transactions"
CONNECTOR_STATUS = "connector_status"
METER_VALUES = "meter_values"  # transactions/repository.py writes them
STATUS_EVENTS = "status_events"  # the connector status history
STATES = ("active", "stopped", "superseded")

Db = AsyncDatabase[dict[str, Any]]
Document = dict[str, Any]


def connector_key(station: str, connector: int) -> str:
    """The ``_id`` of a connector's latest status (and of other per-connector documents)."""
    return f"{station}/{connector}"


def state_of(transaction: Document) -> str:
    """``active``, ``stopped`` (its StopTransaction came, also after a supersede: the real
    stop wins) or ``superseded`` (closed by a newer start on its connector, no stop seen)."""
    if transaction.get("stop") is not None:
        return "stopped"
    if transaction.get("superseded") is not None:
        return "superseded"
    return "active" if transaction.get("active") else "stopped"


async def get(db: Db, transaction_id: int, fields: tuple[str, ...] = ()) -> Document | None:
    """One transaction (only ``fields`` and its id when given)."""
    projection = {field: 1 for field in fields} if fields else None
    return await db[TRANSACTIONS].find_one({"_id": transaction_id}, projection)


async def active_on_connector(db: Db, station: str, connector: int) -> Document | None:
    """The active transaction on a station's connector (the newest to arrive, should a
    superseded one not be closed yet)."""
    return await db[TRANSACTIONS].find_one(
        {"station": station, "connector": connector, "active": True},
        sort=[("received_at", DESCENDING), ("_id", DESCENDING)])


async def active_authorized(db: Db, stations: list[str]) -> list[Document]:
    """The active transactions with an Accepted idTag on these stations (station, connector,
    start_time)."""
    cursor = db[TRANSACTIONS].find(
        {"station": {"$in": stations}, "active": True, "id_tag_info.status": "Accepted"},
        {"station": 1, "connector": 1, "start_time": 1})
    return await cursor.to_list()


async def latest_status(db: Db, station: str, connector: int) -> Document | None:
    """The connector's latest StatusNotification, if it sent one."""
    return await db[CONNECTOR_STATUS].find_one({"_id": connector_key(station, connector)})


async def seen_connectors(db: Db, station: str) -> set[int]:
    """The connectors of a station that sent a StatusNotification (0 is the station itself)."""
    return {int(doc["connector"]) async for doc in db[CONNECTOR_STATUS].find(
        {"station": station}, {"connector": 1})}
