"""GetLog and LogStatusNotification (Security Whitepaper use case N01, "Retrieve log
information").

- **GetLog** is checked before it is recorded: ``log.remoteLocation`` an http, https, ftp or
  ftps URL with a host, no negative retries or retryInterval, ``oldestTimestamp`` not after
  ``latestTimestamp``, and a ``requestId`` no other GetLog of the station holds
  (:mod:`commands.files.request_ids`). A location on GridLink's upload endpoint
  (``…/diagnostics/{station}/{token}``, the one GetDiagnostics uses) registers its token as a
  *log* token for that station and command, so the upload lands in GridFS bucket ``logs``
  with the log type and requestId.
- When the charger accepts (``Accepted``, or ``AcceptedCanceled``: it cancelled an ongoing
  upload for this one, N01.FR.11), a **log job** (``log_jobs``, ``_id`` = command id, with
  ``request_id``) starts in ``Accepted`` — ``NoLogAvailable`` when GetLog.conf names no
  ``filename`` — and follows the LogStatusNotifications that carry its requestId
  (N01.FR.07): Uploading → Uploaded, or UploadFailure, BadMessage, NotSupportedOperation,
  PermissionDenied (N01.FR.08-10). Idle changes nothing. The uploaded file is linked to it
  (``file_id``), whichever arrives first.
"""

from __future__ import annotations

from typing import Any

from commands.files import repository, request_ids, rules, upload_tokens
from commands.files.jobs import ACCEPTED, LOGS, NO_LOG, JobBook, new_job
from commands.hooks import CommandHooks, refuse
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.ocpp16 import call, call_result, parse_time, utcnow
from services.router import CallContext
from services.runtime import ServiceRuntime

ACTION = "GetLog"


def register(hooks: CommandHooks, base: str) -> None:
    """Wire GetLog and LogStatusNotification into the command path."""
    db = hooks.runtime.store.db
    log_jobs = JobBook(db, LOGS)

    @hooks.router.on("LogStatusNotification")
    async def log_status(request: call.LogStatusNotification, ctx: CallContext
                         ) -> call_result.LogStatusNotification:
        await log_jobs.notify(ctx.station, request.status, ctx.received_at,
                              f"{ctx.session}/{ctx.unique_id}", request.request_id)
        return call_result.LogStatusNotification()

    @hooks.validate(ACTION)
    async def get_log_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload, station = request.payload, request.station
        problem = rules.get_log_problem(payload, station)
        if problem is not None:
            refuse(("PropertyConstraintViolation", problem))
        await request_ids.claim_or_refuse(rt, db, request)
        slot = rules.parse_upload_location(payload["log"]["remoteLocation"])
        if slot is None:
            return  # somebody else's server
        expires_at = rules.token_expiry(payload, utcnow())
        details = {"log_type": payload["logType"], "request_id": payload["requestId"]}
        if not await rt.with_store(lambda: upload_tokens.register(
                db, slot.token, station, request.command_id, expires_at, upload_tokens.LOG,
                details)):
            raise CommandRefused("PropertyConstraintViolation",
                                 "log.remoteLocation: this upload token belongs to another "
                                 "command")

    @hooks.after(ACTION)
    async def log_job(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return  # Rejected, or a CALLERROR: the command's own record says why
        payload, response = command["payload"], command.get("response") or {}
        log = payload["log"]
        file_name = response.get("filename")
        times = {key: parse_time(log[name]) if name in log else None
                 for key, name in (("oldest", "oldestTimestamp"), ("latest", "latestTimestamp"))}
        job = new_job(command, ACCEPTED if file_name else NO_LOG,
                      request_id=payload["requestId"], log_type=payload["logType"],
                      location=log["remoteLocation"], file_name=file_name,
                      answer=response.get("status"), **times)
        await rt.with_store(lambda: log_jobs.open(job))
        await rt.with_store(lambda: repository.link_early_upload(
            db, upload_tokens.LOG, command["_id"]))
