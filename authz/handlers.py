"""One async function per OCPP action authz answers, plus handshake admission (rpc.connect)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from authz.repository import AuthzRepository
from services.bus import decode_json
from services.envelope import ConnectBatch, ConnectDecisions, ConnectRequest
from services.errors import Reject
from services.ocpp16 import call, call_result, iso, utcnow
from services.router import CallContext, Router
from services.runtime import ServiceRuntime
from services.settings import Settings

log = logging.getLogger("gridlink.authz")


def build_router(repo: AuthzRepository, settings: Settings) -> Router:
    """Handlers; a boot emits ``station.booted`` (the commands service sends what waited)."""
    router = Router("authz")
    accepted_vendors = frozenset(settings.data_transfer_vendors)

    @router.on("BootNotification")
    async def boot_notification(request: call.BootNotification, ctx: CallContext
                                ) -> call_result.BootNotification:
        boot = {k: v for k, v in vars(request).items() if v is not None}
        status = await repo.record_boot(ctx.station, boot, ctx.received_at)
        log.info("boot", extra={"station": ctx.station, "registration": status})
        ctx.emit("station.booted", {"station": ctx.station, "registration": status,
                                    "at": ctx.received_at})
        return call_result.BootNotification(
            current_time=iso(utcnow()), interval=settings.heartbeat_interval_s, status=status
        )

    @router.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat, ctx: CallContext) -> call_result.Heartbeat:
        await repo.record_seen(ctx.station, ctx.received_at)
        return call_result.Heartbeat(current_time=iso(utcnow()))

    @router.on("Authorize", lane="rpc")  # a question that changes nothing: the fast lane
    async def authorize(request: call.Authorize, ctx: CallContext) -> call_result.Authorize:
        info = await repo.id_tag_info(request.id_tag, ctx.received_at)
        return call_result.Authorize(id_tag_info=info)

    @router.on("DataTransfer")
    async def data_transfer(request: call.DataTransfer, ctx: CallContext
                            ) -> call_result.DataTransfer:
        status = "Accepted" if request.vendor_id in accepted_vendors else "UnknownVendorId"
        raw: dict[str, Any] = {"vendorId": request.vendor_id, "messageId": request.message_id,
                               "data": request.data}
        await repo.record_data_transfer(ctx.station, ctx.unique_id, raw, status, ctx.received_at)
        return call_result.DataTransfer(status=status)

    return router


class Admission:
    """Handshake admission (``rpc.connect`` on the fast lane): may these identities connect?"""

    def __init__(self, runtime: ServiceRuntime, repo: AuthzRepository) -> None:
        self.runtime = runtime
        self.repo = repo

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Answer a gateway's handshake question (a :class:`ConnectBatch`; a single
        :class:`ConnectRequest` from a gateway of the previous release is answered alike).
        A slow database means no answer: the gateway gives up and refuses with 503."""
        runtime, repo = self.runtime, self.repo
        batch = _connect_batch(message)
        try:
            decisions = await asyncio.wait_for(
                runtime.with_store(lambda: repo.admit_many(batch.requests, utcnow())),
                runtime.settings.connect_timeout_s,
            )
        except TimeoutError:
            return  # the gateway gave up already and refused with 503
        if not message.reply_to:
            return
        body = (decisions[0].to_bytes() if batch.single
                else ConnectDecisions(decisions=decisions).to_bytes())
        await runtime.bus.publish("", message.reply_to, body,
                                  correlation_id=message.correlation_id, persistent=False)


class _Admission(ConnectBatch):
    single: bool = False  # the question was a lone ConnectRequest


def _connect_batch(message: AbstractIncomingMessage) -> _Admission:
    try:
        raw = json.loads(message.body)
    except ValueError:
        raise Reject("malformed admission request: not JSON") from None
    if isinstance(raw, dict) and "requests" in raw:
        batch = decode_json(message, ConnectBatch)
        return _Admission(requests=batch.requests)
    return _Admission(requests=[decode_json(message, ConnectRequest)], single=True)
