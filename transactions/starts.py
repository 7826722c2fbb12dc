"""How a StartTransaction is decided: one transaction per connector, a tag's concurrent
sessions limited in the database, and every step safe to repeat.

A connector has one transaction at a time. A new start on a station's connector whose
previous transaction was never stopped (power loss, a lost StopTransaction, a reset) means
that one ended unseen: it is *superseded* (kept, ``active`` False, ``superseded`` says by
which transaction and when, the flag ``superseded``, energy as far as its meter values
tell), its tag's slot is freed, and the driver is not refused. ``ConcurrentTx`` is only for
a tag Accepted on *other* connectors as many times as it may be (``max_concurrent`` of the
tag, 1 by default), decided by :class:`transactions.tag_sessions.TagSessions` with a unique
index, never by a read before the write.

The steps, each idempotent, so a redelivery after a crash at any point finishes the work:

1. find the transaction by its natural key (a retransmission gets the same id and answer,
   and supersedes nothing); otherwise insert it, ``settled`` False;
2. settle it: if an active transaction arrived *after* it on the connector (a delivery late
   or repeated), it is itself superseded by that one; otherwise it supersedes the older
   ones, then an Accepted tag takes a slot (none free: ``ConcurrentTx``);
3. store the outcome once (``settled`` True; a concurrent delivery's outcome wins); a
   transaction that ended up not active and Accepted holds no slot. A start that finds
   no free slot first frees those whose transactions no longer hold them (superseded while
   they took it, or left by a delivery that never finished), so no slot leaks for good.

Order on a connector is the order GridLink received the starts (``received_at``, then the
id), not the charger's timestamps: a charger whose clock reset after a power loss sends
starts "older" than the one they replace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from services import id_tags
from services.metrics import TRANSACTIONS_FLAGGED, TRANSACTIONS_SUPERSEDED
from services.ocpp16 import call, parse_time
from services.router import CallContext
from transactions import checks
from transactions.natural_keys import start_key
from transactions.repository import Document, TransactionRepository, to_millis

log = logging.getLogger("gridlink.transactions")


@dataclass
class Started:
    """A start's transaction as stored, and the transactions it superseded."""

    transaction: Document
    superseded: list[Document] = field(default_factory=list)


async def start(repo: TransactionRepository, request: call.StartTransaction,
                ctx: CallContext) -> Started:
    """Find or record the transaction of a StartTransaction and settle it."""
    timestamp = parse_time(request.timestamp)
    found = await repo.find_start(ctx.station, request.connector_id, request.id_tag,
                                  timestamp, request.meter_start)
    tag: Document | None = None
    inserted = False
    if found is None:
        tag = await repo.find_tag(request.id_tag)
        flags = checks.start_flags(request.meter_start, timestamp, ctx.received_at)
        document: dict[str, Any] = {
            "_id": await repo.ids.next(),
            "start_key": start_key(ctx.station, request.connector_id, request.id_tag,
                                   timestamp, request.meter_start),
            "station": ctx.station,
            "connector": request.connector_id,
            "id_tag": request.id_tag,
            "meter_start": request.meter_start,
            "start_time": timestamp,
            "reservation_id": request.reservation_id,
            "id_tag_info": id_tags.info_from_document(tag, ctx.received_at),
            "active": True,
            "settled": False,
            "stop": None,
            "flags": flags,
            "received_at": to_millis(ctx.received_at),
        }
        found, inserted = await repo.insert_start(document)
        if inserted:
            for flag in flags:
                TRANSACTIONS_FLAGGED.labels(flag).inc()
    elif found.get("settled") is False:  # a delivery that did not finish
        tag = await repo.find_tag(request.id_tag)
    if found.get("settled") is False:
        started = await _settle(repo, found, tag, ctx)
        if inserted:
            return started
        found = started.transaction
    return Started(found, await repo.superseded_by(found["_id"]))


async def _settle(repo: TransactionRepository, document: Document,
                  tag: Document | None, ctx: CallContext) -> Started:
    info = dict(document["id_tag_info"])
    superseded: list[Document] = []
    others = await repo.others_on_connector(document)
    newer = [other for other in others if _order(other) > _order(document)]
    if newer:
        by = max(newer, key=_order)
        if await repo.supersede(document, by, ctx.received_at):
            _superseded(document, by)
    else:
        for old in others:
            if await repo.supersede(old, document, ctx.received_at):
                _superseded(old, document)
                superseded.append(old)
            await repo.sessions.free(old["start_key"])
        if info["status"] == "Accepted" and not await _take_slot(repo, document, tag, ctx):
            info["status"] = "ConcurrentTx"
    settled = await repo.settle(document, info)
    if not (settled["active"] and settled["id_tag_info"]["status"] == "Accepted"):
        await repo.sessions.free(settled["start_key"])  # superseded meanwhile, or refused
    log.info("transaction started", extra={
        "station": ctx.station, "transaction_id": settled["_id"],
        "connector": settled["connector"], "status": settled["id_tag_info"]["status"],
        "superseded": [old["_id"] for old in superseded]})
    return Started(settled, superseded)


async def _take_slot(repo: TransactionRepository, document: Document,
                     tag: Document | None, ctx: CallContext) -> bool:
    """A slot of the tag for this transaction; when none is free, the slots of holders no
    longer in an Accepted active transaction (one superseded while taking its slot, or
    left by a delivery that never finished) are freed first."""
    async def acquire() -> bool:
        return await repo.sessions.acquire(
            document["id_tag"], document["start_key"], id_tags.max_concurrent(tag),
            station=document["station"], connector=document["connector"],
            now=ctx.received_at)

    if await acquire():
        return True
    holders = [held["_id"] for held in await repo.sessions.holders(document["id_tag"])]
    live = await repo.holding_starts(holders)
    freed = [key for key in holders if key not in live and await repo.sessions.release(key)]
    if freed:
        log.warning("freed slots of transactions that no longer hold them", extra={
            "station": ctx.station, "count": len(freed)})
    return bool(freed) and await acquire()


def _order(transaction: Document) -> tuple[Any, int]:
    """Which of two starts on a connector came later: received_at, then the id."""
    return transaction["received_at"], int(transaction["_id"])


def _superseded(old: Document, by: Document) -> None:
    TRANSACTIONS_SUPERSEDED.inc()
    log.warning("transaction superseded by a newer start on its connector", extra={
        "station": old["station"], "transaction_id": old["_id"],
        "connector": old["connector"], "superseded_by": by["_id"]})
