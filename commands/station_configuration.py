"""What GridLink knows of each station's configuration keys: the one writer. The reader
(:class:`Snapshot`, :func:`read`, :func:`read_document`) is the kernel's
:mod:`services.configuration_snapshots`, re-exported here, so operators' tools (the HTTP API)
read it too.

Collection ``station_configuration``, one document per station, built from GetConfiguration
and ChangeConfiguration answers (``commands/core/hooks.py``)::

    {_id: station, keys: [{key, value, readonly, reboot_required?}], unknown_keys: [...],
     updated_at}

Features read it through :func:`read` to learn what a charger reported about itself
(NumberOfConnectors, SendLocalListMaxLength, ChargeProfileMaxStackLevel, ...); a key the
charger never reported is ``None``: GridLink does not guess.

A secret key's value (AuthorizationKey, write-only on the charger) is never kept: a change
is recorded with :data:`commands.redaction.MARKER` as its value, and so is a value a charger
should not have returned in a GetConfiguration answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from commands import redaction
from services.command_records import STATION_CONFIGURATION
from services.configuration_snapshots import Snapshot as Snapshot
from services.configuration_snapshots import read as read
from services.configuration_snapshots import read_document as read_document

COLLECTION = STATION_CONFIGURATION

Db = AsyncDatabase[dict[str, Any]]
Document = dict[str, Any]


def merge_answer(snapshot: Document | None, request: Document, response: Document) -> Document:
    """A new snapshot from a GetConfiguration answer (a full answer replaces the keys)."""
    keys: dict[str, Document] = {}
    unknown: set[str] = set()
    if snapshot is not None and request.get("key"):
        keys = {k["key"]: k for k in snapshot.get("keys", [])}
        unknown = set(snapshot.get("unknown_keys", []))
    for entry in response.get("configurationKey", []):
        keys[entry["key"]] = redaction.redacted_entry({
            "key": entry["key"], "value": entry.get("value"),
            "readonly": bool(entry.get("readonly"))})
        unknown.discard(entry["key"])
    unknown.update(response.get("unknownKey", []))
    return {"keys": sorted(keys.values(), key=lambda k: k["key"]),
            "unknown_keys": sorted(unknown)}


def merge_change(snapshot: Document | None, key: str, value: str, answer: str) -> Document:
    """The snapshot after a ChangeConfiguration of ``key`` answered ``answer``."""
    keys = {k["key"]: k for k in (snapshot or {}).get("keys", [])}
    unknown = set((snapshot or {}).get("unknown_keys", []))
    if answer == "NotSupported":
        unknown.add(key)
        keys.pop(key, None)
    else:
        keys[key] = {"key": key,
                     "value": redaction.MARKER if redaction.is_secret_key(key) else value,
                     "readonly": False, "reboot_required": answer == "RebootRequired"}
    return {"keys": sorted(keys.values(), key=lambda k: k["key"]),
            "unknown_keys": sorted(unknown)}


async def save(db: Db, station: str, snapshot: Document, at: datetime) -> None:
    """Store a merged snapshot."""
    await db[COLLECTION].update_one(
        {"_id": station}, {"$set": {**snapshot, "updated_at": at}}, upsert=True)
