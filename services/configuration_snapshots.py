"""Reading a station's configuration snapshot (collection ``station_configuration``, one
document per station, written by the commands service from GetConfiguration and
ChangeConfiguration answers: :mod:`commands.station_configuration`)::

    {_id: station, keys: [{key, value, readonly, reboot_required?}], unknown_keys: [...],
     updated_at}

A key the charger never reported is ``None``: GridLink does not guess. A secret key's value
is stored redacted (``********``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.command_records import STATION_CONFIGURATION as COLLECTION

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

    def values(self) -> dict[str, Any]:
        """Every reported key and its value (None when reported without one)."""
        return {key: entry.get("value") for key, entry in self.keys.items()}


async def read(db: Db, station: str) -> Snapshot:
    """What the station reported about its configuration."""
    return Snapshot.from_document(await db[COLLECTION].find_one({"_id": station}))


async def read_document(db: Db, station: str) -> Document | None:
    """The stored snapshot document as it is (for ``gridlink config show`` and merges)."""
    return await db[COLLECTION].find_one({"_id": station})
