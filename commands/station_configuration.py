"""What GridLink knows of each station's configuration keys: the one reader (and writer).

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

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from commands import redaction
from services.command_records import STATION_CONFIGURATION

COLLECTION = STATION_CONFIGURATION

Db = AsyncDatabase[dict[str, Any]]
Document = dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """A station's known configuration keys (empty when it never answered GetConfiguration)."""

    keys: dict[str, Document] = field(default_factory=dict)  # key -> {key, value, readonly}
    unknown: frozenset[str] = frozenset()  # keys the charger said it does not know

    @classmethod
    def from_document(cls, document: Document | None) -> Snapshot:
        document = document or {}
        return cls({entry["key"]: entry for entry in document.get("keys", [])},
                   frozenset(document.get("unknown_keys", [])))

    def value(self, key: str) -> str | None:
        """The reported value of ``key`` as text; None when not reported (or reported without a
        value)."""
        entry = self.keys.get(key)
        if entry is None or entry.get("value") is None:
            return None
        return str(entry["value"])

    def integer(self, key: str) -> int | None:
        """The value of ``key`` as an integer; None when not reported or not a number."""
        try:
            return int(str(self.value(key)).strip())
        except ValueError:
            return None

    def features(self) -> set[str] | None:
        """SupportedFeatureProfiles, lower-cased; None when not reported."""
        profiles = self.value("SupportedFeatureProfiles")
        if profiles is None:
            return None
        return {name.strip().lower() for name in profiles.split(",")}

    def read_only(self, key: str) -> bool:
        """Did the charger report ``key`` as read-only?"""
        return bool(self.keys.get(key, {}).get("readonly"))


async def read(db: Db, station: str) -> Snapshot:
    """What the station reported about its configuration."""
    return Snapshot.from_document(await db[COLLECTION].find_one({"_id": station}))


async def read_document(db: Db, station: str) -> Document | None:
    """The stored snapshot document as it is (for ``gridlink config show`` and merges)."""
    return await db[COLLECTION].find_one({"_id": station})


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
