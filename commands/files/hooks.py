"""Firmware Management (OCPP 1.6 §5.9, §5.19, §4.4, §4.5) and its secure successors of the
Security Whitepaper (GetLog, SignedUpdateFirmware): jobs, notifications, file server.

- **UpdateFirmware** is checked before it is recorded: a location GridLink can hand to a
  charger (http, https, ftp, ftps — SupportedFileTransferProtocols) and no negative retries
  or retryInterval. A URL of GridLink's own file server must name an image it holds
  through a valid download token of this command; a tokenless ``{base}/firmware/{name}``
  is given one first (:mod:`commands.files.firmware_locations`). When the charger accepts
  it, a **firmware job** (``firmware_jobs``, ``_id`` = command id) starts in ``Accepted``
  and follows FirmwareStatusNotification: Downloading → Downloaded → Installing →
  Installed, or DownloadFailed / InstallationFailed.
- **GetDiagnostics** likewise (retries, retryInterval ≥ 0, startTime ≤ stopTime). A location
  on GridLink's upload endpoint (``…/diagnostics/{station}/{token}``) registers its token
  for that station and command before anything is sent, so the charger's upload is
  accepted however fast it comes. When the charger accepts, a **diagnostics job** starts in
  ``Accepted`` (``NoDiagnostics`` when the answer has no fileName) and follows
  DiagnosticsStatusNotification: Uploading → Uploaded / UploadFailed; the uploaded file is
  linked to it (``file_id``).
- **GetLog**: :mod:`commands.files.logs`; **SignedUpdateFirmware**:
  :mod:`commands.files.signed_firmware`.

How notifications find their job: :mod:`commands.files.jobs`. The file server
(:mod:`commands.files.http_server`) runs as a background job unless ``GRIDLINK_FILES_PORT``
is 0, over TLS when GridLink has a certificate; its FTP and FTPS listener
(:mod:`commands.files.ftp_server`) as another when ``GRIDLINK_FTP_PORT`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from commands.files import (
    download_tokens,
    firmware_locations,
    logs,
    repository,
    rules,
    signed_firmware,
    upload_tokens,
)
from commands.files.ftp_server import FtpServer
from commands.files.http_server import FileServer
from commands.files.jobs import ACCEPTED, DIAGNOSTICS, FIRMWARE, NO_DIAGNOSTICS, JobBook, new_job
from commands.files.transfers import Limits
from commands.hooks import CommandHooks, refuse
from commands.lifecycle import Lifecycle
from services import tls
from services.envelope import CommandRequest
from services.errors import CommandRefused, ConfigurationError
from services.ocpp16 import call, call_result, parse_time, utcnow
from services.router import CallContext
from services.runtime import ServiceRuntime
from services.security_events import INDEXES as SECURITY_EVENT_INDEXES

log = logging.getLogger("gridlink.commands.firmware")


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    runtime = hooks.runtime
    db = runtime.store.db
    router = hooks.router
    firmware_jobs = JobBook(db, FIRMWARE)
    diagnostics_jobs = JobBook(db, DIAGNOSTICS)
    base = rules.public_base_url(runtime.settings)
    window = timedelta(seconds=runtime.settings.files_download_window_s)
    for indexes in (repository.INDEXES, upload_tokens.INDEXES, download_tokens.INDEXES,
                    SECURITY_EVENT_INDEXES):
        hooks.add_indexes(indexes)

    @router.on("FirmwareStatusNotification")
    async def firmware_status(request: call.FirmwareStatusNotification, ctx: CallContext
                              ) -> call_result.FirmwareStatusNotification:
        await firmware_jobs.notify(ctx.station, request.status, ctx.received_at,
                                   f"{ctx.session}/{ctx.unique_id}")
        return call_result.FirmwareStatusNotification()

    @router.on("DiagnosticsStatusNotification")
    async def diagnostics_status(request: call.DiagnosticsStatusNotification, ctx: CallContext
                                 ) -> call_result.DiagnosticsStatusNotification:
        await diagnostics_jobs.notify(ctx.station, request.status, ctx.received_at,
                                      f"{ctx.session}/{ctx.unique_id}")
        return call_result.DiagnosticsStatusNotification()

    # --- UpdateFirmware ---------------------------------------------------------------------

    @hooks.prepare("UpdateFirmware")
    async def update_firmware_location(rt: ServiceRuntime, request: CommandRequest
                                       ) -> CommandRequest:
        return await rt.with_store(lambda: firmware_locations.tokenise(db, request, base,
                                                                       window))

    @hooks.validate("UpdateFirmware")
    async def update_firmware_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        problem = rules.update_firmware_problem(request.payload)
        if problem is not None:
            refuse(("PropertyConstraintViolation", problem))
        await rt.with_store(lambda: firmware_locations.check(db, request, base))

    @hooks.after("UpdateFirmware")
    async def firmware_job(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return  # the command's own record says why
        payload = command["payload"]
        location = rules.parse_firmware_location(payload["location"], base)
        job = new_job(command, ACCEPTED, location=payload["location"],
                      firmware=location.name if location else None,
                      retrieve_date=parse_time(payload["retrieveDate"]),
                      retries=payload.get("retries"), retry_interval=payload.get("retryInterval"))
        await rt.with_store(lambda: firmware_jobs.open(job))

    # --- GetDiagnostics ---------------------------------------------------------------------

    @hooks.validate("GetDiagnostics")
    async def get_diagnostics_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        problem = rules.get_diagnostics_problem(request.payload, request.station)
        if problem is not None:
            refuse(("PropertyConstraintViolation", problem))
        slot = rules.parse_upload_location(request.payload["location"])
        if slot is None:
            return  # somebody else's server
        expires_at = rules.token_expiry(request.payload, utcnow())
        if not await rt.with_store(lambda: upload_tokens.register(
                db, slot.token, request.station, request.command_id, expires_at)):
            raise CommandRefused("PropertyConstraintViolation",
                                 "location: this upload token belongs to another command")

    @hooks.after("GetDiagnostics")
    async def diagnostics_job(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return
        payload = command["payload"]
        file_name = (command.get("response") or {}).get("fileName")
        times = {key: parse_time(payload[name]) if name in payload else None
                 for key, name in (("start_time", "startTime"), ("stop_time", "stopTime"))}
        job = new_job(command, ACCEPTED if file_name else NO_DIAGNOSTICS,
                      location=payload["location"], file_name=file_name, **times)
        await rt.with_store(lambda: diagnostics_jobs.open(job))
        await rt.with_store(lambda: repository.link_early_upload(
            db, upload_tokens.DIAGNOSTICS, command["_id"]))

    logs.register(hooks, base)
    signed_firmware.register(hooks, base, window)

    # --- the file server ----------------------------------------------------------------------

    if runtime.settings.files_port != 0:
        hooks.background.append(serve_files)
    if runtime.settings.ftp_port != 0:
        if "ftps" in runtime.settings.ftp_schemes and not runtime.settings.tls:
            raise ConfigurationError(
                "GRIDLINK_FTP_PROTOCOLS has ftps but GridLink has no TLS certificate "
                "(GRIDLINK_TLS_CERT_FILE, GRIDLINK_TLS_KEY_FILE)")
        hooks.background.append(serve_ftp)


async def serve_files(runtime: ServiceRuntime) -> None:
    """Serve uploads and downloads until the service stops (retrying a busy port); over TLS
    with a certificate that is reloaded when its files change."""
    settings = runtime.settings
    context = tls.ReloadingContext(settings.tls_cert_file, settings.tls_key_file) \
        if settings.tls_cert_file and settings.tls_key_file else None
    limits = Limits(settings.max_upload_bytes, settings.files_request_timeout_s,
                    settings.files_idle_timeout_s)
    listening = await _listen(runtime, "file server", settings.files_port, lambda: FileServer(
        runtime.store.db, limits, ssl_context=context.context if context else None,
        shutdown_timeout_s=min(settings.shutdown_grace_s, 10.0)))
    if listening is None:
        return
    server, port = listening
    log.info("file server listening", extra={
        "port": port, "scheme": server.scheme, "url": rules.public_base_url(settings)})
    watcher = asyncio.create_task(context.watch(runtime.stopping)) if context else None
    try:
        await runtime.stopping.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await server.stop()


async def serve_ftp(runtime: ServiceRuntime) -> None:
    """Serve FTP and/or FTPS (GRIDLINK_FTP_PROTOCOLS) until the service stops (retrying a
    busy port); on stopping, transfers in progress get GRIDLINK_SHUTDOWN_GRACE_S, and the
    service's loop and database stay up until they are done."""
    settings = runtime.settings
    schemes = settings.ftp_schemes
    context = tls.OpenSSLContext(settings.tls_cert_file, settings.tls_key_file) \
        if "ftps" in schemes and settings.tls_cert_file and settings.tls_key_file else None
    limits = Limits(settings.max_upload_bytes, settings.files_request_timeout_s,
                    settings.files_idle_timeout_s)
    listening = await _listen(runtime, "FTP server", settings.ftp_port, lambda: FtpServer(
        runtime.store.db, limits, schemes=schemes, passive_ports=settings.passive_ports,
        public_host=settings.ftp_public_host, tls_context=context))
    if listening is None:
        return
    server, port = listening
    log.info("FTP server listening", extra={
        "port": port, "schemes": ",".join(schemes),
        "passive_ports": settings.ftp_passive_ports})
    try:
        await runtime.stopping.wait()
    finally:
        stopping = asyncio.ensure_future(server.stop(settings.shutdown_grace_s))
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await stopping  # the transfers still need the loop and the database
            raise


class _Listener(Protocol):
    async def start(self, host: str, port: int) -> int: ...


ListenerT = TypeVar("ListenerT", bound=_Listener)


async def _listen(runtime: ServiceRuntime, what: str, port: int,
                  make: Callable[[], ListenerT]) -> tuple[ListenerT, int] | None:
    """A new listener from ``make`` started on ``port``, retried every 5 s while the port is
    busy; the listener and the port it listens on, or None if the service stops first."""
    while not runtime.stopping.is_set():
        server = make()
        try:
            return server, await server.start(runtime.settings.files_host, port)
        except OSError as exc:
            log.error(f"{what} cannot listen; retrying", extra={"port": port, "error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), 5.0)
    return None
