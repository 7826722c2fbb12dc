"""One async function per OCPP action the transactions service answers.

Every handler is idempotent: the broker delivers at least once and chargers retransmit. No
check of what a charger reports prevents its answer: surprising values are stored with
``flags`` (:mod:`transactions.checks`, docs/bad-input.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services.metrics import TRANSACTIONS_FLAGGED
from services.ocpp16 import call, call_result, parse_time
from services.router import CallContext, Router
from transactions import checks, starts
from transactions.meter_samples import sample_documents
from transactions.repository import Document, TransactionRepository

log = logging.getLogger("gridlink.transactions")


def build_router(repo: TransactionRepository) -> Router:
    """Handlers; after each write an event (``transaction.started``, ``transaction.updated``
    for meter values of a transaction, ``transaction.stopped``, ``station.status``) is
    emitted, again on a retransmission (at least once, with the same ``event_id``: the
    transaction, the reading, the status and its time name it). A transaction
    superseded by a new start is announced ``transaction.stopped`` (with ``superseded_by``)."""
    router = Router("transactions")

    @router.on("StartTransaction")
    async def start_transaction(request: call.StartTransaction, ctx: CallContext
                                ) -> call_result.StartTransaction:
        started = await starts.start(repo, request, ctx)
        transaction = started.transaction
        repo.remember_station(transaction["_id"], transaction["station"])
        ctx.emit("transaction.started", {
            "station": ctx.station, "connector": transaction["connector"],
            "transaction_id": transaction["_id"], "id_tag": transaction["id_tag"],
            "status": transaction["id_tag_info"]["status"],
            "reservation_id": transaction.get("reservation_id"),
            "meter_start": transaction["meter_start"], "at": transaction["start_time"]},
            transaction["_id"])
        ended = list(started.superseded)
        if transaction.get("superseded") and transaction.get("stop") is None:
            ended.append(transaction)  # it arrived after a newer start on its connector
        for old in ended:
            ctx.emit("transaction.stopped", {
                "station": old["station"], "connector": old["connector"],
                "transaction_id": old["_id"], "at": old["superseded"]["at"],
                "energy_wh": old["superseded"]["energy_wh"],
                "superseded_by": old["superseded"]["by"]}, old["_id"])
        return call_result.StartTransaction(
            transaction_id=transaction["_id"], id_tag_info=transaction["id_tag_info"])

    @router.on("StopTransaction")
    async def stop_transaction(request: call.StopTransaction, ctx: CallContext
                               ) -> call_result.StopTransaction:
        stop_time = parse_time(request.timestamp)
        stop = {
            "transaction_id": request.transaction_id,
            "meter_stop": request.meter_stop,
            "time": stop_time,
            "reason": request.reason or "Local",
            "id_tag": request.id_tag,
            "received_at": ctx.received_at,
        }
        # the answer's idTagInfo is looked up alongside the transaction, not after the stop
        transaction, info = await asyncio.gather(
            repo.find_transaction(request.transaction_id),
            _tag_info(repo, request.id_tag, ctx))
        samples: dict[str, Any] = {}
        if transaction is None or transaction["station"] != ctx.station:
            await repo.record_orphan_stop(ctx.station, stop)
            log.warning("stop for unknown transaction kept for review", extra={
                "station": ctx.station, "transaction_id": request.transaction_id})
            connector = 0
            samples = _detached(request.transaction_id, transaction)
        else:
            flags = checks.stop_flags(transaction, request.meter_stop, stop_time,
                                      ctx.received_at)
            energy = checks.energy_wh(int(transaction["meter_start"]), request.meter_stop)
            if await repo.record_stop(request.transaction_id, stop, energy, flags):
                for flag in flags:
                    TRANSACTIONS_FLAGGED.labels(flag).inc()
                log.info("transaction stopped", extra={
                    "station": ctx.station, "transaction_id": request.transaction_id,
                    "energy_wh": energy, "flags": flags})
            if "start_key" in transaction:  # again on a redelivery: idempotent
                await repo.sessions.free(transaction["start_key"])
            connector = int(transaction["connector"])
            samples = {"transaction_id": request.transaction_id}
            ctx.emit("transaction.stopped", {
                "station": ctx.station, "connector": connector,
                "transaction_id": request.transaction_id, "at": stop_time,
                "energy_wh": energy}, request.transaction_id)
        if request.transaction_data:
            await _store_samples(repo, sample_documents(
                ctx.station, connector, meter_values=request.transaction_data,
                received_at=ctx.received_at, **samples))
        return call_result.StopTransaction(id_tag_info=info)

    @router.on("MeterValues")
    async def meter_values(request: call.MeterValues, ctx: CallContext
                           ) -> call_result.MeterValues:
        samples: dict[str, Any] = {"transaction_id": request.transaction_id}
        if request.transaction_id is not None:
            owner = await repo.transaction_station(request.transaction_id)
            if owner != ctx.station:
                samples = _detached(request.transaction_id, owner)
                log.warning("meter values for another station's or an unknown transaction "
                            "kept under the sending station", extra={
                                "station": ctx.station,
                                "transaction_id": request.transaction_id})
        documents = sample_documents(
            ctx.station, request.connector_id, meter_values=request.meter_value,
            received_at=ctx.received_at, **samples)
        await _store_samples(repo, documents)
        if samples["transaction_id"] is not None and documents:
            latest = max(d["timestamp"] for d in documents)
            ctx.emit("transaction.updated", {
                "station": ctx.station, "connector": request.connector_id,
                "transaction_id": request.transaction_id, "at": latest,
                "values": [_sample_view(d) for d in documents if d["timestamp"] == latest]},
                request.transaction_id, latest)
        return call_result.MeterValues()

    @router.on("StatusNotification")
    async def status_notification(request: call.StatusNotification, ctx: CallContext
                                  ) -> call_result.StatusNotification:
        status = {
            "status": request.status,
            "error_code": request.error_code,
            "info": request.info,
            "vendor_id": request.vendor_id,
            "vendor_error_code": request.vendor_error_code,
            "timestamp": parse_time(request.timestamp) if request.timestamp else ctx.received_at,
            "received_at": ctx.received_at,
        }
        await repo.record_status(ctx.station, request.connector_id, status)
        ctx.emit("station.status", {
            "station": ctx.station, "connector": request.connector_id,
            "status": request.status, "error_code": request.error_code,
            "at": status["timestamp"], "received_at": ctx.received_at},
            ctx.station, request.connector_id, request.status, request.error_code,
            status["timestamp"])
        return call_result.StatusNotification()

    return router


async def _tag_info(repo: TransactionRepository, id_tag: str | None,
                    ctx: CallContext) -> dict[str, Any] | None:
    """A StopTransaction's idTagInfo: only when the stop names a tag."""
    return await repo.id_tag_info(id_tag, ctx.received_at) if id_tag else None


def _detached(transaction_id: int, owner: Document | str | None) -> dict[str, Any]:
    """Samples naming a transaction that is not the sender's: stored against none."""
    flag = checks.UNKNOWN_TRANSACTION if owner is None else checks.OTHER_STATION_TRANSACTION
    return {"transaction_id": None, "claimed_transaction_id": transaction_id,
            "flags": [flag]}


def _sample_view(document: Document) -> dict[str, Any]:
    """A stored sample as ``transaction.updated`` shows it (the latest reading only)."""
    return {key: document[key] for key in ("measurand", "value", "unit", "phase", "context")
            if document.get(key) is not None}


async def _store_samples(repo: TransactionRepository, documents: list[Document]) -> None:
    for document in await repo.insert_new_samples(documents):
        for flag in document.get("flags", ()):
            TRANSACTIONS_FLAGGED.labels(flag).inc()
