"""One async function per OCPP action the transactions service answers.

Every handler is idempotent: the broker delivers at least once and chargers retransmit.
"""

from __future__ import annotations

import logging
from typing import Any

from services.ocpp16 import call, call_result, parse_time
from services.router import CallContext, Router
from transactions.repository import TransactionRepository, sample_documents, start_key

log = logging.getLogger("gridlink.transactions")


def build_router(repo: TransactionRepository) -> Router:
    """Handlers; after each write an event (``transaction.started``, ``transaction.stopped``,
    ``station.status``) is emitted, again on a retransmission: at least once."""
    router = Router("transactions")

    @router.on("StartTransaction")
    async def start_transaction(request: call.StartTransaction, ctx: CallContext
                                ) -> call_result.StartTransaction:
        timestamp = parse_time(request.timestamp)
        key = start_key(ctx.station, request.connector_id, request.id_tag, timestamp,
                        request.meter_start)
        existing = await repo.find_start(key)
        if existing is None:
            info = await repo.id_tag_info(request.id_tag, ctx.received_at)
            if info["status"] == "Accepted" and await repo.has_active_authorized(request.id_tag):
                info = {**info, "status": "ConcurrentTx"}
            document: dict[str, Any] = {
                "_id": await repo.ids.next(),
                "start_key": key,
                "station": ctx.station,
                "connector": request.connector_id,
                "id_tag": request.id_tag,
                "meter_start": request.meter_start,
                "start_time": timestamp,
                "reservation_id": request.reservation_id,
                "id_tag_info": info,
                "active": True,
                "stop": None,
                "received_at": ctx.received_at,
            }
            existing = await repo.insert_start(document)
            log.info("transaction started", extra={
                "station": ctx.station, "transaction_id": existing["_id"],
                "connector": request.connector_id, "status": existing["id_tag_info"]["status"]})
        ctx.emit("transaction.started", {
            "station": ctx.station, "connector": existing["connector"],
            "transaction_id": existing["_id"], "id_tag": existing["id_tag"],
            "status": existing["id_tag_info"]["status"],
            "reservation_id": existing.get("reservation_id"),
            "meter_start": existing["meter_start"], "at": existing["start_time"]})
        return call_result.StartTransaction(
            transaction_id=existing["_id"], id_tag_info=existing["id_tag_info"]
        )

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
        transaction = await repo.find_transaction(request.transaction_id)
        if transaction is None or transaction["station"] != ctx.station:
            await repo.record_orphan_stop(ctx.station, stop)
            log.warning("stop for unknown transaction kept for review", extra={
                "station": ctx.station, "transaction_id": request.transaction_id})
            connector = 0
        else:
            energy = request.meter_stop - int(transaction["meter_start"])
            if await repo.record_stop(request.transaction_id, stop, energy):
                log.info("transaction stopped", extra={
                    "station": ctx.station, "transaction_id": request.transaction_id,
                    "energy_wh": energy})
            connector = int(transaction["connector"])
            ctx.emit("transaction.stopped", {
                "station": ctx.station, "connector": connector,
                "transaction_id": request.transaction_id, "at": stop_time,
                "energy_wh": energy})
        if request.transaction_data:
            await repo.insert_samples(sample_documents(
                ctx.station, connector, request.transaction_id, request.transaction_data,
                ctx.received_at))
        info = await repo.id_tag_info(request.id_tag, ctx.received_at) if request.id_tag else None
        return call_result.StopTransaction(id_tag_info=info)

    @router.on("MeterValues")
    async def meter_values(request: call.MeterValues, ctx: CallContext
                           ) -> call_result.MeterValues:
        await repo.insert_samples(sample_documents(
            ctx.station, request.connector_id, request.transaction_id, request.meter_value,
            ctx.received_at))
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
            "at": status["timestamp"], "received_at": ctx.received_at})
        return call_result.StatusNotification()

    return router
