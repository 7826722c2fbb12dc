"""The webhook collections and every query on them.

``webhook_subscriptions``: ``{_id: "wh_…", url, events: [pattern…], active, description,
secret: <Fernet token>, created_at, updated_at, version}`` — the signing secret only sealed
(:mod:`api.webhooks.secret_box`).

``webhook_deliveries`` (the delivery log): ``{_id: "dlv_…", key, subscription, event,
event_id, body, state: pending|delivered|failed, attempts: [{at, duration_ms, status,
error, response}], attempt_count, next_attempt_at, lease, created_at, event_at,
delivered_at, replay_of}``. ``key`` is unique: ``<subscription>/<event id>`` for a delivery
made from an event, so a redelivered event adds nothing; a replay has a key of its own.
``body`` is the exact text sent (and signed), so every attempt sends the same bytes.

Claiming (:meth:`WebhookRepository.claim`): one ``find_one_and_update`` takes a pending
delivery whose ``next_attempt_at`` has come and moves ``next_attempt_at`` to the end of a
lease, with a random ``lease`` token: another API process sees it as not due until the lease
ends, so two never attempt it at once, and if this one dies the delivery is due again when
the lease runs out. An attempt's result is written only by the holder of the lease.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.store import IndexSpec

SUBSCRIPTIONS = "webhook_subscriptions"
DELIVERIES = "webhook_deliveries"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DUPLICATE_KEY = 11000

INDEXES: IndexSpec = {
    SUBSCRIPTIONS: [IndexModel([("events", ASCENDING), ("active", ASCENDING)])],
    DELIVERIES: [
        IndexModel([("key", ASCENDING)], unique=True),
        IndexModel([("state", ASCENDING), ("next_attempt_at", ASCENDING)]),
        IndexModel([("subscription", ASCENDING), ("_id", DESCENDING)]),
    ],
}

Document = dict[str, Any]


def new_id(prefix: str) -> str:
    """``wh_…`` / ``dlv_…``: random (never a timestamp: ids never collide across replicas),
    and sortable enough for a cursor (the log pages by ``_id``)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def delivery_id(now: datetime) -> str:
    """A delivery id that sorts by creation time (the log is newest first): the time in
    milliseconds as 12 hex digits, then randomness."""
    return f"dlv_{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"


def new_delivery(subscription: str, event: str, event_id: str, body: str, now: datetime, *,
                 event_at: datetime, replay_of: str | None = None) -> Document:
    """A pending delivery of ``body``, due now (a replay gets a key of its own)."""
    ident = delivery_id(now)
    key = f"{subscription}/{event_id}" + (f"/replay/{ident}" if replay_of else "")
    return {"_id": ident, "key": key, "subscription": subscription, "event": event,
            "event_id": event_id, "body": body, "state": PENDING, "attempts": [],
            "attempt_count": 0, "next_attempt_at": now, "lease": None, "created_at": now,
            "event_at": event_at, "replay_of": replay_of}


class WebhookRepository:
    """Subscriptions and deliveries in MongoDB (writes with the client's w: majority)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.subscriptions = db[SUBSCRIPTIONS]
        self.deliveries = db[DELIVERIES]

    async def ensure_indexes(self) -> None:
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)

    # --- subscriptions --------------------------------------------------------------------

    async def create_subscription(self, document: Document) -> None:
        await self.subscriptions.insert_one(document)

    async def subscription(self, subscription_id: str) -> Document | None:
        return await self.subscriptions.find_one({"_id": subscription_id})

    async def wanted_patterns(self) -> list[str]:
        """Every pattern some active subscription has (what ``{ns}.webhooks`` is bound to:
        :mod:`api.webhooks.bindings`)."""
        return [str(p) for p in await self.subscriptions.distinct("events", {"active": True})]

    async def subscribers(self, event: str) -> list[Document]:
        """The active subscriptions whose patterns name ``event``: itself, its family's
        ``family.*`` or ``*`` (the patterns :func:`api.webhooks.rules.check_patterns`
        allows), found by the index on ``events``."""
        family = event.split(".", 1)[0]
        return await self.subscriptions.find({
            "active": True, "events": {"$in": [event, f"{family}.*", "*"]}}).to_list()

    async def update_subscription(self, subscription_id: str, changes: Document,
                                  now: datetime, *, version: int | None = None
                                  ) -> Document | None:
        """Apply ``changes`` (only if still at ``version``, when given); the new document,
        or None (not found, or changed meanwhile)."""
        query: Document = {"_id": subscription_id}
        if version is not None:
            query["version"] = version
        return await self.subscriptions.find_one_and_update(
            query, {"$set": {**changes, "updated_at": now}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER)

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Delete it; its pending deliveries are failed (their log is kept)."""
        result = await self.subscriptions.delete_one({"_id": subscription_id})
        if result.deleted_count:
            await self.deliveries.update_many(
                {"subscription": subscription_id, "state": PENDING},
                {"$set": {"state": FAILED, "failure": "subscription deleted"}})
        return bool(result.deleted_count)

    # --- deliveries -----------------------------------------------------------------------

    async def add_deliveries(self, documents: list[Document]) -> int:
        """Insert deliveries; those whose key exists already (a redelivered event) are
        skipped. How many are new."""
        if not documents:
            return 0
        try:
            result = await self.deliveries.insert_many(documents, ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            return len(documents) - len(errors)

    async def add_delivery(self, document: Document) -> bool:
        try:
            await self.deliveries.insert_one(document)
        except DuplicateKeyError:
            return False
        return True

    async def delivery(self, subscription_id: str, delivery_id: str) -> Document | None:
        return await self.deliveries.find_one({"_id": delivery_id,
                                               "subscription": subscription_id})

    @staticmethod
    def log_query(subscription_id: str, state: str | None = None) -> Document:
        """The deliveries of a subscription (in one state); newest first by ``_id``."""
        query: Document = {"subscription": subscription_id}
        if state:
            query["state"] = state
        return query

    async def list_deliveries(self, subscription_id: str, *, state: str | None = None,
                              limit: int = 100) -> list[Document]:
        """The log, newest first, ``limit`` at most."""
        return await self.deliveries.find(self.log_query(subscription_id, state),
                                          sort=[("_id", DESCENDING)], limit=limit).to_list()

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (None: nothing pending)."""
        document = await self.deliveries.find_one(
            {"state": PENDING}, sort=[("next_attempt_at", ASCENDING)],
            projection={"next_attempt_at": 1})
        return document["next_attempt_at"] if document else None

    async def claim(self, now: datetime, lease_s: float) -> Document | None:
        """Take the earliest due delivery for ``lease_s`` (see the module docstring)."""
        return await self.deliveries.find_one_and_update(
            {"state": PENDING, "next_attempt_at": {"$lte": now}},
            {"$set": {"next_attempt_at": now + timedelta(seconds=lease_s),
                      "lease": secrets.token_hex(8)}},
            sort=[("next_attempt_at", ASCENDING)], return_document=ReturnDocument.AFTER)

    async def record_attempt(self, delivery: Document, attempt: Document, *, state: str,
                             next_attempt_at: datetime | None,
                             failure: str | None = None) -> bool:
        """Log an attempt and the delivery's new state, if the lease is still ours."""
        changes: Document = {"state": state, "lease": None}
        if next_attempt_at is not None:
            changes["next_attempt_at"] = next_attempt_at
        if state == DELIVERED:
            changes["delivered_at"] = attempt["at"]
        if failure:
            changes["failure"] = failure
        result = await self.deliveries.update_one(
            {"_id": delivery["_id"], "lease": delivery["lease"]},
            {"$set": changes, "$push": {"attempts": attempt}, "$inc": {"attempt_count": 1}})
        return bool(result.modified_count)
