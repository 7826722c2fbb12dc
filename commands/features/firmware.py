"""Firmware Management: FirmwareStatusNotification and DiagnosticsStatusNotification."""

from __future__ import annotations

from commands.features import CommandHooks
from commands.repository import DIAGNOSTICS_STATUS, FIRMWARE_STATUS, CommandRepository
from services.ocpp16 import call, call_result
from services.router import CallContext


def register(hooks: CommandHooks) -> None:
    router = hooks.router
    repo = CommandRepository(hooks.runtime.store.db)

    @router.on("FirmwareStatusNotification")
    async def firmware_status(request: call.FirmwareStatusNotification, ctx: CallContext
                              ) -> call_result.FirmwareStatusNotification:
        await repo.record_notification(FIRMWARE_STATUS, ctx.station, request.status,
                                       ctx.received_at, ctx.unique_id)
        return call_result.FirmwareStatusNotification()

    @router.on("DiagnosticsStatusNotification")
    async def diagnostics_status(request: call.DiagnosticsStatusNotification, ctx: CallContext
                                 ) -> call_result.DiagnosticsStatusNotification:
        await repo.record_notification(DIAGNOSTICS_STATUS, ctx.station, request.status,
                                       ctx.received_at, ctx.unique_id)
        return call_result.DiagnosticsStatusNotification()
