"""The Local Authorization List of each station: derived from the id-tag store, kept in sync
with SendLocalList (Full or Differential), with what every station holds stored in MongoDB.

Shared by the commands service (``commands/features/local_list.py``: validation, state after
the charger's answers, the Full fallback) and the CLI (``gridlink locallist``).

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services import id_tags
from services.store import IndexSpec

COLLECTION = "local_lists"
CONFIGURATION = "station_configuration"  # GetConfiguration snapshots (commands/features/core.py)
INDEXES: IndexSpec = {COLLECTION: [IndexModel("sync.state")]}

MAX_ID_TAG_LENGTH = 20  # IdToken is CiString20Type
MAX_LIST_VERSION = 2**31 - 1
#: SendLocalList answers after which a Differential is retried as a Full update (§5.15).
FALL_BACK_TO_FULL = frozenset({"Failed", "VersionMismatch"})
#: A running job whose last step is older than this (past its command timeout) is abandoned.
JOB_STALE_GRACE_S = 30.0

Entries = dict[str, dict[str, Any]]  # idTag -> idTagInfo


class SyncRefused(Exception):
    """A sync cannot start (list too long, a job already running ...); one line for the user."""


# --- the list: pure functions ---------------------------------------------------------------


def desired_entries(tag_documents: Iterable[dict[str, Any]], now: datetime) -> Entries:
    """The list a station should hold: every storable tag with its idTagInfo at ``now``.

    Tags longer than 20 characters cannot be sent (IdToken) and are left out; a parent that
    long is left out of the tag's idTagInfo.
    """
    entries: Entries = {}
    for document in tag_documents:
        tag = str(document["_id"])
        if len(tag) > MAX_ID_TAG_LENGTH:
            continue
        info = id_tags.info_from_document(document, now)
        if len(info.get("parentIdTag", "")) > MAX_ID_TAG_LENGTH:
            del info["parentIdTag"]
        entries[tag] = info
    return entries


def entries_from_stored(stored: list[dict[str, Any]] | None) -> Entries:
    """Stored ``[{idTag, idTagInfo}]`` as a mapping."""
    return {entry["idTag"]: entry["idTagInfo"] for entry in stored or []}


def entries_to_stored(entries: Entries) -> list[dict[str, Any]]:
    """A mapping as ``[{idTag, idTagInfo}]`` sorted by idTag (the stored and sent form)."""
    return [{"idTag": tag, "idTagInfo": entries[tag]} for tag in sorted(entries)]


def differences(held: Entries, desired: Entries) -> list[dict[str, Any]]:
    """AuthorizationData of a Differential update: added or changed tags with their
    idTagInfo, removed tags without one (§7.1), sorted by idTag."""
    changes = []
    for tag in sorted(held.keys() | desired.keys()):
        if tag not in desired:
            changes.append({"idTag": tag})
        elif held.get(tag) != desired[tag]:
            changes.append({"idTag": tag, "idTagInfo": desired[tag]})
    return changes


def apply_update(held: Entries | None, payload: dict[str, Any]) -> Entries:
    """What a station holds after accepting a SendLocalList ``payload``."""
    entries: Entries = {} if payload["updateType"] == "Full" else dict(held or {})
    for item in payload.get("localAuthorizationList") or []:
        if "idTagInfo" in item:
            entries[item["idTag"]] = item["idTagInfo"]
        else:
            entries.pop(item["idTag"], None)
    return entries


def needs_full(held_version: int | None, reported_version: int | None, *, force: bool) -> bool:
    """A Differential is only safe when the station reports the version GridLink confirmed."""
    return force or held_version is None or reported_version != held_version


def _chunks(items: list[dict[str, Any]], size: int | None) -> list[list[dict[str, Any]]]:
    if not size or size <= 0 or len(items) <= size:
        return [items]
    return [items[i:i + size] for i in range(0, len(items), size)]


def plan_updates(*, held_version: int | None, held: Entries | None, desired: Entries,
                 full: bool, max_per_message: int | None = None, floor_version: int = 0
                 ) -> list[dict[str, Any]]:
    """The SendLocalList payloads that turn ``held`` into ``desired``, in order.

    Versions continue from ``max(held_version, floor_version)`` (never 0 or -1, errata 3.52).
    ``full``: one Full update (the first ``max_per_message`` entries) and Differentials for
    the rest. Otherwise Differentials of the changes only; nothing when there are none.
    """
    version = max(held_version or 0, floor_version, 0)
    if full or held is None:
        chunks = _chunks(entries_to_stored(desired), max_per_message)
        kinds = ["Full"] + ["Differential"] * (len(chunks) - 1)
    else:
        changes = differences(held, desired)
        if not changes:
            return []
        chunks = _chunks(changes, max_per_message)
        kinds = ["Differential"] * len(chunks)
    payloads = []
    for kind, chunk in zip(kinds, chunks, strict=True):
        version += 1
        if version > MAX_LIST_VERSION:
            raise SyncRefused("listVersion would pass 2^31-1; send a Full update from 1 "
                              "after clearing the station's list")
        payloads.append({"listVersion": version, "updateType": kind,
                         "localAuthorizationList": chunk})
    return payloads


# --- station limits and request checks ------------------------------------------------------


@dataclass(frozen=True)
class ListLimits:
    """What a station said about its list (GetConfiguration snapshot); None when unknown."""

    per_message: int | None = None  # SendLocalListMaxLength
    list_size: int | None = None  # LocalAuthListMaxLength
    supported: bool | None = None  # LocalAuthListManagement in SupportedFeatureProfiles


def _key_value(snapshot: dict[str, Any] | None, key: str) -> str | None:
    for entry in (snapshot or {}).get("keys", []):
        if entry.get("key") == key and entry.get("value") is not None:
            return str(entry["value"])
    return None


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value > 0 else None


def limits_from_configuration(snapshot: dict[str, Any] | None) -> ListLimits:
    """Read SendLocalListMaxLength, LocalAuthListMaxLength, SupportedFeatureProfiles."""
    profiles = _key_value(snapshot, "SupportedFeatureProfiles")
    supported = None
    if profiles is not None:
        names = {p.strip().lower() for p in profiles.split(",")}
        supported = "localauthlistmanagement" in names
    return ListLimits(per_message=_positive_int(_key_value(snapshot, "SendLocalListMaxLength")),
                      list_size=_positive_int(_key_value(snapshot, "LocalAuthListMaxLength")),
                      supported=supported)


def refusal(station: str, payload: dict[str, Any], *, held: Entries | None,
            limits: ListLimits, reported_version: int | None) -> tuple[str, str] | None:
    """Why a SendLocalList request must not be sent, as (code, description); None if fine."""
    if limits.supported is False:
        return ("NotSupported", f"{station} does not list LocalAuthListManagement in "
                                "SupportedFeatureProfiles")
    if reported_version == -1:
        return ("NotSupported", f"{station} answered GetLocalListVersion with -1 (no local "
                                "list); ask again with GetLocalListVersion if that changed")
    if payload["listVersion"] < 1:
        return ("PropertyConstraintViolation", "listVersion must be at least 1 (0 and -1 "
                "have a special meaning in GetLocalListVersion, errata 3.52)")
    items = payload.get("localAuthorizationList") or []
    seen: set[str] = set()
    for item in items:
        tag = item["idTag"]
        if tag in seen:
            return ("PropertyConstraintViolation",
                    f"idTag {tag!r} appears twice; idTags in the list must be unique")
        seen.add(tag)
        if payload["updateType"] == "Full" and "idTagInfo" not in item:
            return ("OccurenceConstraintViolation",
                    f"a Full update needs idTagInfo for every entry ({tag!r} has none)")
    if limits.per_message is not None and len(items) > limits.per_message:
        return ("ListTooLong", f"{len(items)} entries in one SendLocalList; {station} takes "
                               f"at most {limits.per_message} (SendLocalListMaxLength)")
    # The resulting size is known for a Full update, and for a Differential on a known list.
    if limits.list_size is not None and (payload["updateType"] == "Full" or held is not None):
        size = len(apply_update(held, payload))
        if size > limits.list_size:
            return ("ListTooLong", f"the list would hold {size} entries; {station} holds at "
                                   f"most {limits.list_size} (LocalAuthListMaxLength)")
    return None


def job_command_id(job_id: str, n: int) -> str:
    """The command id of the ``n``-th message (from 0) a sync job sends."""
    return f"{job_id}.{n}"


def failure_reason(command: dict[str, Any]) -> str:
    """One line saying why a SendLocalList command did not update the list."""
    status = command["status"]
    if status in ("accepted", "rejected"):
        answer = (command.get("response") or {}).get("status")
        return f"SendLocalList v{command['payload']['listVersion']} answered {answer}"
    detail = " ".join(x for x in (command.get("error_code"), command.get("error_description"))
                      if x)
    return f"{status}: {detail}".rstrip(": ")


# --- the store ------------------------------------------------------------------------------

Db = AsyncDatabase[dict[str, Any]]


async def load(db: Db, station: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": station})


async def desired_from_store(db: Db, now: datetime) -> Entries:
    """The list every station should hold, from the id-tag store."""
    cursor = db[id_tags.COLLECTION].find({}, {"status": 1, "expiry": 1, "parent": 1})
    return desired_entries(await cursor.to_list(), now)


async def limits_for(db: Db, station: str) -> ListLimits:
    return limits_from_configuration(await db[CONFIGURATION].find_one({"_id": station}))


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


def current_payload(job: dict[str, Any]) -> dict[str, Any]:
    """The payload of the job's current command."""
    return dict(job["payloads"][job["step"]])


async def any_running_job(db: Db, station: str, now: datetime) -> bool:
    """Is a job of the station running (and not stale)?"""
    state = await load(db, station)
    job = (state or {}).get("sync")
    if not job or job["state"] != "running":
        return False
    return bool(job["updated_at"] >= now - timedelta(seconds=job["timeout_s"]
                                                     + JOB_STALE_GRACE_S))


def summary(station: str, state: dict[str, Any] | None, desired: Entries) -> dict[str, Any]:
    """What ``gridlink locallist show`` prints about a station."""
    state = state or {}
    held = entries_from_stored(state.get("entries")) if "entries" in state else None
    job = state.get("sync") or {}
    return {
        "station": station,
        "version": state.get("version"),
        "reportedVersion": state.get("reported_version"),
        "pendingChanges": len(differences(held, desired)) if held is not None else None,
        "sync": {"state": job.get("state"), "reason": job.get("reason"),
                 "fallback": job.get("fallback")} if job else None,
        "entries": entries_to_stored(held) if held is not None else [],
    }
