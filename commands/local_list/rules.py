"""The Local Authorization List without I/O: the list a station should hold (derived from the
id-tag store), the SendLocalList payloads that bring a station there, and the checks a
SendLocalList request must pass.

The list a station should hold is every tag of ``id_tags`` with the ``idTagInfo`` Authorize
would answer (Blocked, Expired and Invalid tags included: the list may mark them, §3.5.2).
A list longer than the station's ``SendLocalListMaxLength`` is sent as one Full update
followed by Differentials, each with the next version; a Differential is only safe when the
station reports the version GridLink confirmed (:func:`needs_full`). What each station holds
and the sync jobs are stored by :mod:`commands.local_list.repository`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands.station_configuration import Snapshot
from services import id_tags
from services.envelope import failure_text
from services.errors import Refused

MAX_ID_TAG_LENGTH = 20  # IdToken is CiString20Type
MAX_LIST_VERSION = 2**31 - 1
#: SendLocalList answers after which a Differential is retried as a Full update (§5.15).
FALL_BACK_TO_FULL = frozenset({"Failed", "VersionMismatch"})
#: A running job whose last step is older than this (past its command timeout) is abandoned.
JOB_STALE_GRACE_S = 30.0

Entries = dict[str, dict[str, Any]]  # idTag -> idTagInfo


class SyncRefused(Refused):
    """A sync cannot start (list too long, a job already running ...); one line for the user."""

    def __init__(self, description: str) -> None:
        super().__init__("SyncRefused", description)


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


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def limits_from_configuration(document: dict[str, Any] | None) -> ListLimits:
    """Read SendLocalListMaxLength, LocalAuthListMaxLength, SupportedFeatureProfiles from a
    stored configuration snapshot."""
    snapshot = Snapshot.from_document(document)
    features = snapshot.features()
    return ListLimits(per_message=_positive(snapshot.integer("SendLocalListMaxLength")),
                      list_size=_positive(snapshot.integer("LocalAuthListMaxLength")),
                      supported=None if features is None else "localauthlistmanagement" in features)


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
    return failure_text(status, command.get("error_code"), command.get("error_description"),
                        reason=status)


def current_payload(job: dict[str, Any]) -> dict[str, Any]:
    """The payload of the job's current command."""
    return dict(job["payloads"][job["step"]])


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

