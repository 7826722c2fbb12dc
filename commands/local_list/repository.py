"""What every station holds of its Local Authorization List, and the sync jobs that bring it
up to date (SendLocalList, Full or Differential).

Shared by the commands service (``commands/local_list/hooks.py``: state after the charger's
answers, the next message of a job, the Full fallback) and the CLI (``gridlink locallist``).

Collection ``local_lists``, one document per station::

    {_id: station,
     version: int | None,            # the list version the station holds (confirmed: set only
     entries: [{idTag, idTagInfo}],  #   when the charger answers a SendLocalList Accepted)
     reported_version, reported_at,  # its latest GetLocalListVersion answer (-1: no support)
     sync: {...}}                    # the latest sync job, below

The list a station should hold is every tag of ``id_tags`` with the ``idTagInfo`` Authorize
would answer (Blocked, Expired and Invalid tags included: the list may mark them, §3.5.2).

**Sync jobs.** Bringing a station up to date may take several SendLocalList messages (a list
longer than ``SendLocalListMaxLength`` is sent as one Full followed by Differentials, each
with the next version). The messages are planned up front and kept in ``sync``::

    {id, state: running|done|failed, payloads: [...], step, sent, current: command id,
     fallback: bool, reason, timeout_s, started_at, updated_at}

The requester (the CLI) plans the job and sends its first message; the commands service
sends each next message once the previous one is Accepted. A Differential answered
``VersionMismatch`` or ``Failed`` is retried as a Full update of the whole list (§5.15), once
per job; any other outcome ends the job ``failed`` with the reason. Command ids of a job are
``<job id>.<n>``, so a job's messages are found by id and never sent twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from commands import station_configuration
from commands.local_list.rules import (
    JOB_STALE_GRACE_S,
    Entries,
    ListLimits,
    SyncRefused,
    apply_update,
    desired_entries,
    entries_from_stored,
    entries_to_stored,
    job_command_id,
    limits_from_configuration,
    needs_full,
    plan_updates,
)
from services import id_tags
from services.store import IndexSpec

COLLECTION = "local_lists"
INDEXES: IndexSpec = {COLLECTION: [IndexModel("sync.state")]}

Db = AsyncDatabase[dict[str, Any]]


async def load(db: Db, station: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": station})


async def desired_from_store(db: Db, now: datetime) -> Entries:
    """The list every station should hold, from the id-tag store."""
    cursor = db[id_tags.COLLECTION].find({}, {"status": 1, "expiry": 1, "parent": 1})
    return desired_entries(await cursor.to_list(), now)


async def limits_for(db: Db, station: str) -> ListLimits:
    return limits_from_configuration(await station_configuration.read_document(db, station))


async def plan_sync(db: Db, station: str, now: datetime, *, full: bool,
                    reported_version: int | None = None, floor_version: int = 0
                    ) -> tuple[list[dict[str, Any]], int | None]:
    """Plan the messages that bring ``station`` up to date: (payloads, version it holds).

    Differential when the station reports (``reported_version``, else its last stored
    answer) the version GridLink confirmed, Full otherwise or when ``full``. SyncRefused
    when the list is longer than the station's LocalAuthListMaxLength.
    """
    state = await load(db, station) or {}
    held = entries_from_stored(state["entries"]) if "entries" in state else None
    desired = await desired_from_store(db, now)
    limits = await limits_for(db, station)
    if limits.list_size is not None and len(desired) > limits.list_size:
        raise SyncRefused(f"the list has {len(desired)} entries; {station} holds at most "
                          f"{limits.list_size} (LocalAuthListMaxLength)")
    reported = state.get("reported_version") if reported_version is None else reported_version
    version = state.get("version")
    whole = needs_full(version, reported, force=full)
    payloads = plan_updates(
        held_version=version, held=held, desired=desired, full=whole,
        max_per_message=limits.per_message,
        floor_version=max(floor_version, reported or 0) if whole else 0)
    return payloads, version


async def record_reported_version(db: Db, station: str, version: int, at: datetime) -> None:
    """Keep a GetLocalListVersion answer."""
    await db[COLLECTION].update_one(
        {"_id": station}, {"$set": {"reported_version": version, "reported_at": at}},
        upsert=True)


async def record_accepted(db: Db, station: str, payload: dict[str, Any], at: datetime) -> None:
    """The station accepted ``payload``: it now holds the updated list with its version."""
    state = await load(db, station)
    held = entries_from_stored(state.get("entries")) if state and "entries" in state else None
    fields: dict[str, Any] = {"version": payload["listVersion"], "updated_at": at,
                              "reported_version": payload["listVersion"], "reported_at": at}
    update: dict[str, Any] = {"$set": fields}
    if payload["updateType"] == "Differential" and held is None:
        update["$unset"] = {"entries": ""}  # changes to an unknown list: contents unknown
    else:
        fields["entries"] = entries_to_stored(apply_update(held, payload))
    await db[COLLECTION].update_one({"_id": station}, update, upsert=True)


def _job(job_id: str, payloads: list[dict[str, Any]], timeout_s: float, now: datetime, *,
         fallback: bool) -> dict[str, Any]:
    return {"id": job_id, "state": "running", "payloads": payloads, "step": 0, "sent": 1,
            "current": job_command_id(job_id, 0), "fallback": fallback, "reason": None,
            "timeout_s": timeout_s, "started_at": now, "updated_at": now}


async def begin_job(db: Db, station: str, payloads: list[dict[str, Any]], *, timeout_s: float,
                    now: datetime, job_id: str | None = None, fallback: bool = False
                    ) -> dict[str, Any]:
    """Record a new running job (its first command id is ``current``); SyncRefused while
    another job of the station runs (unless that one is stale)."""
    job = _job(job_id or f"locallist-{uuid.uuid4()}", payloads, timeout_s, now,
               fallback=fallback)
    stale = now - timedelta(seconds=timeout_s + JOB_STALE_GRACE_S)
    try:
        result = await db[COLLECTION].update_one(
            {"_id": station, "$or": [{"sync.state": {"$ne": "running"}},
                                     {"sync.updated_at": {"$lt": stale}}]},
            {"$set": {"sync": job}}, upsert=True)
    except DuplicateKeyError:
        result = None
    if result is None or (result.matched_count == 0 and result.upserted_id is None):
        raise SyncRefused(f"a local list sync of {station} is already running")
    return job


async def running_job(db: Db, station: str, command_id: str) -> dict[str, Any] | None:
    """The station's running job if its current command is ``command_id``."""
    state = await load(db, station)
    job = (state or {}).get("sync")
    if job and job["state"] == "running" and job["current"] == command_id:
        return dict(job)
    return None


async def _next_command(db: Db, station: str, job: dict[str, Any], command_id: str,
                        changes: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Make the job's next command id current (with ``changes``); the updated job."""
    updated = await db[COLLECTION].find_one_and_update(
        {"_id": station, "sync.id": job["id"], "sync.current": command_id},
        {"$set": {**{f"sync.{k}": v for k, v in changes.items()},
                  "sync.sent": job["sent"] + 1,
                  "sync.current": job_command_id(job["id"], job["sent"]),
                  "sync.updated_at": now}},
        return_document=ReturnDocument.AFTER)
    return None if updated is None else dict(updated["sync"])


async def advance_job(db: Db, station: str, command_id: str, now: datetime
                      ) -> dict[str, Any] | None:
    """The job's current command was Accepted: move to its next message (the updated job),
    or finish it ``done`` (then None). None also when ``command_id`` is no job's current."""
    job = await running_job(db, station, command_id)
    if job is None:
        return None
    step = job["step"] + 1
    if step >= len(job["payloads"]):
        await end_job(db, station, job["id"], "done", None, now, command_id=command_id)
        return None
    return await _next_command(db, station, job, command_id, {"step": step}, now)


async def restart_job_full(db: Db, station: str, command_id: str,
                           payloads: list[dict[str, Any]], now: datetime
                           ) -> dict[str, Any] | None:
    """Replace the rest of the job by a Full plan (the fallback); the updated job or None."""
    job = await running_job(db, station, command_id)
    if job is None:
        return None
    return await _next_command(db, station, job, command_id,
                               {"payloads": payloads, "step": 0, "fallback": True}, now)


async def end_job(db: Db, station: str, job_id: str, state: str, reason: str | None,
                  now: datetime, *, command_id: str | None = None) -> bool:
    """Finish a running job (``done`` or ``failed``); False if it was not running."""
    query: dict[str, Any] = {"_id": station, "sync.id": job_id, "sync.state": "running"}
    if command_id is not None:
        query["sync.current"] = command_id
    result = await db[COLLECTION].update_one(
        query, {"$set": {"sync.state": state, "sync.reason": reason, "sync.updated_at": now}})
    return result.modified_count == 1


async def any_running_job(db: Db, station: str, now: datetime) -> bool:
    """Is a job of the station running (and not stale)?"""
    state = await load(db, station)
    job = (state or {}).get("sync")
    if not job or job["state"] != "running":
        return False
    return bool(job["updated_at"] >= now - timedelta(seconds=job["timeout_s"]
                                                     + JOB_STALE_GRACE_S))
