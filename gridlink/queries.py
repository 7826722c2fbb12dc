"""Operator queries and edits of the registries (the CLI uses them, as any operator tool may).

Collection names come from the modules that own them; feature areas offer their own rows
(``commands/<feature>/repository.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from commands.repository import COMMANDS
from services import id_tags, stations
from services.ocpp16 import iso, utcnow
from services.store import IndexSpec, merge_indexes
from services.transaction_records import TRANSACTIONS

INDEXES: IndexSpec = merge_indexes(stations.INDEXES, id_tags.INDEXES)


async def add_stations(db: AsyncDatabase[dict[str, Any]], ids: list[str], *,
                       registration: str, password: str | None,
                       security_profile: int | None = None, certificate_cn: str | None = None
                       ) -> dict[str, str]:
    """Add or update stations; the keys generated for profile 1 and 2 stations that had no
    password (by station: the only time they are seen in clear)."""
    now = utcnow()
    generated: dict[str, str] = {}
    for station in ids:
        key = password
        if key is None and security_profile in (1, 2):
            existing = await db[stations.COLLECTION].find_one(
                {"_id": station}, projection={"password_hash": 1})
            if not (existing or {}).get("password_hash"):
                key = generated[station] = stations.generate_key()
        await stations.add_station(db, station, registration=registration, password=key,
                                   now=now, security_profile=security_profile,
                                   certificate_cn=certificate_cn)
    return generated


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
                  expiry: datetime | None, parent: str | None) -> None:
    await id_tags.upsert_tag(db, tag, status=status, expiry=expiry, parent=parent)


async def list_tags(db: AsyncDatabase[dict[str, Any]]) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    async for doc in db[id_tags.COLLECTION].find({}, sort=[("_id", 1)]):
        info = id_tags.info_from_document(doc, now)
        rows.append({"idTag": doc["_id"], "status": doc.get("status"),
                     "effectiveStatus": info["status"], "expiry": _time(doc.get("expiry")),
                     "parent": doc.get("parent")})
    return rows


async def list_transactions(db: AsyncDatabase[dict[str, Any]], station: str | None
                            ) -> list[dict[str, Any]]:
    query = {"station": station} if station else {}
    rows = []
    async for doc in db[TRANSACTIONS].find(query, sort=[("_id", 1)]):
        stop = doc.get("stop") or {}
        rows.append({
            "transactionId": doc["_id"],
            "chargePointId": doc["station"],
            "connectorId": doc["connector"],
            "idTag": doc["id_tag"],
            "status": doc.get("id_tag_info", {}).get("status"),
            "meterStart": doc["meter_start"],
            "meterStop": stop.get("meter_stop"),
            "energyWh": doc.get("energy_wh"),
            "startTime": _time(doc.get("start_time")),
            "stopTime": _time(stop.get("time")),
            "stopReason": stop.get("reason"),
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
