"""One async function per OCPP action authz answers (admission: :mod:`authz.admission`)."""

from __future__ import annotations

import logging
from typing import Any

from authz.repository import AuthzRepository
from services.ocpp16 import call, call_result, iso, utcnow
from services.router import CallContext, Router
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
        """Stored once per call; a ``data`` beyond GRIDLINK_MAX_DATA_TRANSFER_BYTES is
        answered Rejected and only its size kept."""
        raw: dict[str, Any] = {"vendorId": request.vendor_id, "messageId": request.message_id}
        size = len(request.data.encode("utf-8", "surrogatepass")) if request.data else 0
        rejected = None
        if size > settings.max_data_transfer_bytes:
            status, rejected = "Rejected", "data_too_large"
            log.warning("DataTransfer data too large; answered Rejected, not stored", extra={
                "station": ctx.station, "data_bytes": size,
                "limit": settings.max_data_transfer_bytes})
        else:
            status = "Accepted" if request.vendor_id in accepted_vendors else "UnknownVendorId"
            raw["data"] = request.data
        await repo.record_data_transfer(ctx.station, ctx.session, ctx.unique_id, raw, status,
                                        ctx.received_at, data_bytes=size, rejected=rejected)
        return call_result.DataTransfer(status=status)

    return router
