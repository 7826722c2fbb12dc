"""Local Auth List Management: GetLocalListVersion and SendLocalList (Full and Differential).

The list model is :mod:`commands.local_list.rules`; what each station holds and the sync jobs
(also started by ``gridlink locallist``) are :mod:`commands.local_list.repository`. Here:

- SendLocalList is refused before it is recorded when listVersion < 1 (errata 3.52), an
  idTag appears twice, a Full entry has no idTagInfo, it exceeds the station's
  SendLocalListMaxLength / LocalAuthListMaxLength, or the station has no local list
  (SupportedFeatureProfiles, or GetLocalListVersion answered -1);
- a GetLocalListVersion answer is kept as the station's reported version;
- an Accepted SendLocalList updates what the station holds (version and entries), and the
  station's sync job sends its next message;
- a Differential answered VersionMismatch or Failed is retried as a Full update of the whole
  list (§5.15) — for any requester's command, once per job; other failures end the job.
"""

from __future__ import annotations

import logging
from typing import Any

from commands.hooks import CommandHooks, refuse
from commands.lifecycle import Lifecycle
from commands.local_list import repository, rules
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.local_list")

MAX_COMMAND_ID = 128


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    db = hooks.runtime.store.db
    hooks.add_indexes(repository.INDEXES)

    @hooks.validate("SendLocalList")
    async def send_local_list_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        state = await rt.with_store(lambda: repository.load(db, request.station)) or {}
        limits = await rt.with_store(lambda: repository.limits_for(db, request.station))
        held = rules.entries_from_stored(state["entries"]) if "entries" in state else None
        refusal = rules.refusal(request.station, request.payload, held=held,
                                     limits=limits,
                                     reported_version=state.get("reported_version"))
        refuse(refusal)

    @hooks.after("GetLocalListVersion")
    async def version_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return
        version = int(command["response"]["listVersion"])
        await rt.with_store(lambda: repository.record_reported_version(
            db, command["station"], version, utcnow()))

    @hooks.after("SendLocalList")
    async def list_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        station, command_id = command["station"], command["_id"]
        payload = command["payload"]
        answer = (command.get("response") or {}).get("status")
        now = utcnow()
        if command["status"] == "accepted" and answer == "Accepted":
            await rt.with_store(lambda: repository.record_accepted(db, station, payload, now))
            job = await rt.with_store(lambda: repository.advance_job(
                db, station, command_id, now))
            if job is not None:
                await send_current(rt, station, job)
            return
        job = await rt.with_store(lambda: repository.running_job(db, station, command_id))
        if (answer in rules.FALL_BACK_TO_FULL and payload["updateType"] == "Differential"
                and not (job and job["fallback"])):
            await fall_back_to_full(rt, command, job)
            return
        if job is not None:
            await fail(rt, station, job, command_id, rules.failure_reason(command))

    async def fall_back_to_full(rt: ServiceRuntime, command: dict[str, Any],
                                job: dict[str, Any] | None) -> None:
        """Replace a failed Differential by a Full update of the whole list (§5.15)."""
        station, command_id = command["station"], command["_id"]
        now = utcnow()
        try:
            payloads, _ = await rt.with_store(lambda: repository.plan_sync(
                db, station, now, full=True,
                floor_version=command["payload"]["listVersion"]))
        except rules.SyncRefused as exc:
            log.warning("full local list update impossible", extra={
                "station": station, "error": str(exc)})
            if job is not None:
                await fail(rt, station, job, command_id, str(exc))
            return
        if job is not None:
            new_job = await rt.with_store(lambda: repository.restart_job_full(
                db, station, command_id, payloads, now))
        elif await rt.with_store(lambda: repository.any_running_job(db, station, now)):
            return  # another sync is bringing the station up to date already
        else:
            job_id = f"{command_id[:MAX_COMMAND_ID - 20]}:full"
            try:
                new_job = await rt.with_store(lambda: repository.begin_job(
                    db, station, payloads, timeout_s=command["timeout_s"], now=now,
                    job_id=job_id, fallback=True))
            except rules.SyncRefused:
                return
        if new_job is not None:
            log.info("differential local list update failed; sending the full list", extra={
                "station": station, "command_id": command_id})
            await send_current(rt, station, new_job)

    async def fail(rt: ServiceRuntime, station: str, job: dict[str, Any], command_id: str,
                   reason: str) -> None:
        """End the job ``failed`` (if ``command_id`` is still its current command)."""
        await rt.with_store(lambda: repository.end_job(
            db, station, job["id"], "failed", reason, utcnow(), command_id=command_id))

    async def send_current(rt: ServiceRuntime, station: str, job: dict[str, Any]) -> None:
        """Send the job's current message (its id makes a repeat a no-op)."""
        request = CommandRequest(command_id=job["current"], station=station,
                                 action="SendLocalList",
                                 payload=rules.current_payload(job),
                                 timeout_s=job["timeout_s"])
        try:
            await commands.validate(request)
        except CommandRefused as exc:
            await fail(rt, station, job, job["current"],
                       f"refused: {exc.code} {exc.description}")
            return
        await commands.submit(request, origin="local_list")
