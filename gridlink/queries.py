"""Operator queries and edits of the registries (the CLI uses them, as any operator tool may).

Collection names come from the modules that own them; feature areas offer their own rows
(``commands/<feature>/repository.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services import id_tags, stations
from services.clock import iso, utcnow
from services.command_records import COMMANDS
from services.store import IndexSpec, merge_indexes
from services.transaction_records import METER_VALUES, TRANSACTIONS, state_of

INDEXES: IndexSpec = merge_indexes(stations.INDEXES, id_tags.INDEXES)


async def add_stations(db: AsyncDatabase[dict[str, Any]], ids: list[str], *,
                       registration: str, password: str | None,
                       security_profile: int | None = None, certificate_cn: str | None = None
                       ) -> dict[str, str]:
    """Add or update stations (:func:`services.stations.register_stations`)."""
    return await stations.register_stations(db, ids, registration=registration,
                                            password=password,
                                            security_profile=security_profile,
                                            certificate_cn=certificate_cn)


async def list_stations(db: AsyncDatabase[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    async for doc in db[stations.COLLECTION].find({}, sort=[("_id", 1)]):
        boot = doc.get("boot", {})
        rows.append({
            "chargePointId": doc["_id"],
            "registration": doc.get("registration"),
            "vendor": boot.get("charge_point_vendor"),
            "model": boot.get("charge_point_model"),
            "serial": boot.get("charge_point_serial_number"),
            "firmware": boot.get("firmware_version"),
            "lastBoot": _time(doc.get("last_boot")),
            "lastSeen": _time(doc.get("last_seen")),
            "securityProfile": stations.security_profile(doc),
            "password": "set" if doc.get("password_hash") else None,
            "certificateCn": doc.get("certificate_cn"),
        })
    return rows


async def add_tag(db: AsyncDatabase[dict[str, Any]], tag: str, *, status: str,
                  expiry: datetime | None, parent: str | None,
                  max_concurrent: int | None = None) -> None:
    """Add or update a tag (``max_concurrent`` None keeps the stored limit; new tags: 1)."""
    await id_tags.upsert_tag(db, tag, status=status, expiry=expiry, parent=parent,
                             max_concurrent=max_concurrent)


async def list_tags(db: AsyncDatabase[dict[str, Any]]) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    async for doc in db[id_tags.COLLECTION].find({}, sort=[("_id", 1)]):
        info = id_tags.info_from_document(doc, now)
        rows.append({"idTag": doc["_id"], "status": doc.get("status"),
                     "effectiveStatus": info["status"], "expiry": _time(doc.get("expiry")),
                     "parent": doc.get("parent"),
                     "maxConcurrent": id_tags.max_concurrent(doc)})
    return rows


async def list_transactions(db: AsyncDatabase[dict[str, Any]], station: str | None, *,
                            flagged: bool = False) -> list[dict[str, Any]]:
    """Transactions by id: ``state`` (active, stopped, superseded), ``flags`` (the
    transaction's, then ``meter:<flag>`` for flags of its meter values); ``flagged``: only
    those with a flag."""
    query = {"station": station} if station else {}
    documents = await db[TRANSACTIONS].find(query, sort=[("_id", 1)]).to_list()
    sample_flags: dict[int, list[str]] = {}
    cursor = db[METER_VALUES].find(
        {"transaction_id": {"$in": [doc["_id"] for doc in documents]},
         "flags": {"$exists": True}}, {"transaction_id": 1, "flags": 1})
    async for sample in cursor:
        known = sample_flags.setdefault(sample["transaction_id"], [])
        known += [f"meter:{flag}" for flag in sample["flags"] if f"meter:{flag}" not in known]
    rows = []
    for doc in documents:
        flags = [*doc.get("flags", []), *sample_flags.get(doc["_id"], [])]
        if flagged and not flags:
            continue
        stop = doc.get("stop") or {}
        rows.append({
            "transactionId": doc["_id"],
            "chargePointId": doc["station"],
            "connectorId": doc["connector"],
            "idTag": doc["id_tag"],
            "status": doc.get("id_tag_info", {}).get("status"),
            "state": state_of(doc),
            "meterStart": doc["meter_start"],
            "meterStop": stop.get("meter_stop"),
            "energyWh": doc.get("energy_wh"),
            "startTime": _time(doc.get("start_time")),
            "stopTime": _time(stop.get("time")),
            "stopReason": stop.get("reason"),
            "supersededBy": (doc.get("superseded") or {}).get("by"),
            "flags": flags,
        })
    return rows


async def list_samples(db: AsyncDatabase[dict[str, Any]], *, station: str | None,
                       transaction_id: int | None, flagged: bool, limit: int
                       ) -> list[dict[str, Any]]:
    """Stored meter values, newest first; ``flagged``: only those with a flag (also the ones
    kept under their station because they named another's transaction)."""
    query: dict[str, Any] = {}
    if station:
        query["station"] = station
    if transaction_id is not None:
        query["$or"] = [{"transaction_id": transaction_id},
                        {"claimed_transaction_id": transaction_id}]
    if flagged:
        query["flags"] = {"$exists": True}
    rows = []
    async for doc in db[METER_VALUES].find(query, sort=[("timestamp", -1)], limit=limit):
        rows.append({
            "chargePointId": doc["station"],
            "connectorId": doc["connector"],
            "transactionId": doc.get("transaction_id"),
            "claimedTransactionId": doc.get("claimed_transaction_id"),
            "timestamp": _time(doc.get("timestamp")),
            "measurand": doc.get("measurand"),
            "value": doc.get("value"),
            "unit": doc.get("unit"),
            "format": doc.get("format"),
            "context": doc.get("context"),
            "flags": doc.get("flags", []),
        })
    return rows


def _time(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


async def list_commands(db: AsyncDatabase[dict[str, Any]], station: str | None, limit: int
                        ) -> list[dict[str, Any]]:
    """Commands with their lifecycle, newest first."""
    query = {"station": station} if station else {}
    rows = []
    async for doc in db[COMMANDS].find(query, sort=[("created_at", -1)], limit=limit):
        rows.append({
            "commandId": doc["_id"],
            "station": doc["station"],
            "action": doc["action"],
            "sender": doc.get("sender"),
            "status": doc["status"],
            "created": _time(doc.get("created_at")),
            "updated": _time(doc.get("updated_at")),
            "error": " ".join(x for x in (doc.get("error_code"), doc.get("error_description"))
                              if x) or None,
            "history": [f"{h['status']}@{_time(h['at'])}" for h in doc.get("history", [])],
        })
    return rows
