"""Coalesce lookups by one field from concurrent handlers into one ``find`` with ``$in``.

``await reads.find(collection, field, value, where=..., projection=...)`` returns the
documents whose ``field`` equals ``value`` (and that match ``where``). Concurrent lookups
with the same collection, field, ``where`` and projection share one query (natural
batching, :mod:`services.coalesce`): a boot storm asks for thousands of stations' records
at once, and one ``$in`` query is far cheaper for every MongoDB-wire server than thousands
of ``find_one``. Values must be hashable scalars (ids, station names); ``field`` may be a
dotted path into subdocuments or arrays of them (``members.station``). A query that fails
for a non-transient reason (a value pymongo cannot encode, such as an integer beyond 64
bits) is asked again one value at a time, so only that lookup fails.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.coalesce import Coalescer
from services.failures import is_transient
from services.metrics import STORE_BATCH_SPLITS

Document = dict[str, Any]


class ReadBatcher:
    def __init__(self, db: AsyncDatabase[Document], *, max_keys: int = 500,
                 component: str = "") -> None:
        self.db = db
        self.component = component or "unnamed"
        self._finds: Coalescer[Any, list[Document]] = Coalescer(
            self._find, max_size=max_keys, isolate=lambda exc: not is_transient(exc),
            on_split=lambda *_: STORE_BATCH_SPLITS.labels(self.component, "read").inc())

    @property
    def queries(self) -> int:
        return self._finds.trips

    @property
    def splits(self) -> int:
        """Queries that failed for a non-transient reason and were asked value by value."""
        return self._finds.splits

    async def find(self, collection: str, field: str, value: Any, *,
                   where: dict[str, Any] | None = None,
                   projection: dict[str, Any] | None = None) -> list[Document]:
        """Documents of ``collection`` with ``field == value`` matching ``where``."""
        kind = (collection, field, _frozen(where or {}), _frozen(projection))
        return await self._finds.submit(kind, value)

    async def find_one(self, collection: str, field: str, value: Any, *,
                       projection: dict[str, Any] | None = None) -> Document | None:
        found = await self.find(collection, field, value, projection=projection)
        return found[0] if found else None

    async def _find(self, kind: Hashable, values: list[Any]) -> list[list[Document]]:
        collection, field, where, projection = kind  # type: ignore[misc]
        query = {**json.loads(where), field: {"$in": list(dict.fromkeys(values))}}
        shown = json.loads(projection)
        inclusion = any(v for k, v in (shown or {}).items() if k != "_id")
        if inclusion and field != "_id" and field not in shown:
            shown = {**shown, field: 1}  # an inclusion projection must show the key
        by_value: dict[Any, list[Document]] = {}
        async for document in self.db[collection].find(query, projection=shown):
            for value in _values_at(document, field):
                by_value.setdefault(value, []).append(document)
        # each caller its own (shallow) copies: a handler may update what it was given
        return [[dict(found) for found in by_value.get(value, [])] for value in values]


def _values_at(document: Document, field: str) -> list[Any]:
    """The hashable values a filter on ``field`` matches in ``document``: a dotted path goes
    into subdocuments and arrays of them (``members.station`` of ``members: [{station}]``),
    as MongoDB's own matching does; each value once."""
    found: list[Any] = [document]
    for part in field.split("."):
        step: list[Any] = []
        for value in found:
            items = value if isinstance(value, list) else [value]
            step += [item[part] for item in items if isinstance(item, dict) and part in item]
        found = step
    if not found and "." not in field:
        return [None]  # a missing field matches a lookup of None, as in MongoDB
    flat = [item for value in found for item in (value if isinstance(value, list) else [value])]
    return list(dict.fromkeys(item for item in flat if isinstance(item, Hashable)))


def _frozen(value: dict[str, Any] | None) -> str:
    """A hashable form of a filter or projection (plain JSON values only)."""
    return json.dumps(value, sort_keys=True)
