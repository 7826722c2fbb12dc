"""How many transactions a tag has Accepted at once, enforced by the database.

Collection ``tag_sessions``: one document per Accepted transaction that holds one of its
tag's slots, ``{_id: start_key, tag, slot, station, connector, since}``, with a unique
index on ``(tag, slot)``. A tag allowed ``n`` concurrent sessions
(:func:`services.id_tags.max_concurrent`) has slots ``0 .. n-1``; a start takes one with an
insert, which the unique index lets succeed for one writer only, however many transactions
replicas try at once. No read decides on its own: reads only say which slots to try.

Keyed by the transaction's natural key (``start_key``), so a redelivered or retransmitted
StartTransaction finds the slot its first delivery took instead of taking another, even if
that delivery never got as far as storing the transaction. Releasing (stop, supersede) is a
delete by that key: idempotent under redelivery. Lowering a tag's limit never evicts a
session; new ones wait until fewer than the new limit hold slots.
"""

from __future__ import annotations

import random
import zlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DeleteOne, IndexModel, InsertOne
from pymongo.asynchronous.database import AsyncDatabase

from services.store import IndexSpec
from services.write_batcher import WriteBatcher, raise_unexpected

COLLECTION = "tag_sessions"
INDEXES: IndexSpec = {COLLECTION: [IndexModel([("tag", ASCENDING), ("slot", ASCENDING)],
                                              unique=True)]}


#: Slots a start of a fleet tag tries at random after the first, before reading them all.
GUESSES = 2


def _on_id(error: dict[str, Any]) -> bool:
    """Whether a duplicate-key error is on ``_id`` (the transaction's own key), not on
    ``(tag, slot)``, as far as the server says (else False: the read decides)."""
    pattern = error.get("keyPattern")
    if isinstance(pattern, dict):
        return list(pattern) == ["_id"]
    return "index: _id_ " in str(error.get("errmsg", ""))


class TagSessions:
    def __init__(self, db: AsyncDatabase[dict[str, Any]],
                 writes: WriteBatcher | None = None) -> None:
        self.collection = db[COLLECTION]
        # slot inserts and frees of concurrent messages go in one bulk: the unique index
        # decides each insert on its own, as it does a lone one
        self.writes = writes or WriteBatcher(db, component="transactions")

    async def acquire(self, tag: str, key: str, limit: int, *, station: str, connector: int,
                      now: datetime) -> bool:
        """Take a slot of ``tag`` for the transaction ``key`` (True, also when it holds one
        already), or False when all ``limit`` slots are held by other transactions."""
        document = {"_id": key, "tag": tag, "station": station, "connector": connector,
                    "since": now}
        # The common case (a tag of one session, free) costs one insert. A fleet tag's
        # starts try slots spread by their key, then at random, before reading which slots
        # are held: concurrent starts of one tag do not all race for the lowest free one,
        # and a start costs no read of every session of the tag while most slots are free.
        slot = 0 if limit <= 1 else zlib.crc32(key.encode()) % limit
        guesses = 0 if limit <= 1 else GUESSES
        while True:
            result = await self.writes.write(COLLECTION, [InsertOne({**document, "slot": slot})])
            error = raise_unexpected(result)[0]
            if error is None:
                return True
            if _on_id(error):
                return True  # this transaction holds a slot already (a redelivery)
            if guesses > 0:
                guesses -= 1
                slot = random.randrange(limit)
                continue
            # a duplicate key: this slot was taken, or this transaction holds one already
            held = await self.collection.find({"tag": tag}, {"slot": 1}).to_list()
            if any(found["_id"] == key for found in held):
                return True
            free = sorted(set(range(limit)) - {int(found["slot"]) for found in held})
            if not free:
                return False
            slot = random.choice(free)

    async def release(self, key: str) -> bool:
        """Free the slot of transaction ``key``; False if it held none (idempotent)."""
        result = await self.collection.delete_one({"_id": key})
        return result.deleted_count == 1

    async def free(self, key: str) -> None:
        """Free the slot of transaction ``key`` if it holds one (idempotent), in one bulk
        with concurrent messages' frees."""
        raise_unexpected(await self.writes.write(COLLECTION, [DeleteOne({"_id": key})]))

    async def holders(self, tag: str) -> list[dict[str, Any]]:
        """The transactions holding a slot of ``tag`` (for operators and tests)."""
        return await self.collection.find({"tag": tag}, sort=[("slot", ASCENDING)]).to_list()
