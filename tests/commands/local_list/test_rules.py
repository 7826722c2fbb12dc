"""The local list model without a database: desired list, differences, plans, checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commands.local_list import rules as local_list
from commands.local_list.rules import ListLimits

NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
ACCEPTED = {"status": "Accepted"}
BLOCKED = {"status": "Blocked"}


def test_desired_entries_judge_tags_like_authorize() -> None:
    documents = [
        {"_id": "A", "status": "Accepted", "expiry": None, "parent": "GROUP"},
        {"_id": "B", "status": "Accepted", "expiry": NOW - timedelta(seconds=1), "parent": None},
        {"_id": "C", "status": "Blocked"},
        {"_id": "X" * 21, "status": "Accepted"},  # cannot be sent: IdToken is 20 characters
        {"_id": "D", "status": "Accepted", "parent": "P" * 21},
    ]
    entries = local_list.desired_entries(documents, NOW)
    assert entries == {
        "A": {"status": "Accepted", "parentIdTag": "GROUP"},
        "B": {"status": "Expired", "expiryDate": "2026-11-23T19:59:59.000Z"},
        "C": {"status": "Blocked"},
        "D": {"status": "Accepted"},
    }


def test_differences_add_change_and_remove() -> None:
    held = {"A": ACCEPTED, "B": ACCEPTED, "C": ACCEPTED}
    desired = {"A": ACCEPTED, "B": BLOCKED, "D": ACCEPTED}
    assert local_list.differences(held, desired) == [
        {"idTag": "B", "idTagInfo": BLOCKED},
        {"idTag": "C"},  # removed: no idTagInfo (§7.1)
        {"idTag": "D", "idTagInfo": ACCEPTED},
    ]
    assert local_list.differences(desired, desired) == []


def test_apply_update_full_replaces_and_differential_patches() -> None:
    held = {"A": ACCEPTED, "B": ACCEPTED}
    full = {"listVersion": 3, "updateType": "Full",
            "localAuthorizationList": [{"idTag": "Z", "idTagInfo": BLOCKED}]}
    assert local_list.apply_update(held, full) == {"Z": BLOCKED}
    diff = {"listVersion": 4, "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "A"}, {"idTag": "C", "idTagInfo": ACCEPTED}]}
    assert local_list.apply_update(held, diff) == {"B": ACCEPTED, "C": ACCEPTED}
    assert local_list.apply_update(held, {"listVersion": 5, "updateType": "Full"}) == {}
    assert held == {"A": ACCEPTED, "B": ACCEPTED}  # not modified in place


@pytest.mark.parametrize(("held", "reported", "force", "full"), [
    (None, 0, False, True),  # never synced
    (4, 4, False, False),
    (4, 7, False, True),  # somebody else changed the list
    (4, 0, False, True),  # the station lost its list
    (4, 4, True, True),
])
def test_needs_full(held: int | None, reported: int, force: bool, full: bool) -> None:
    assert local_list.needs_full(held, reported, force=force) is full


def test_plan_differential_only_the_changes_with_the_next_version() -> None:
    payloads = local_list.plan_updates(held_version=4, held={"A": ACCEPTED, "B": ACCEPTED},
                                       desired={"A": ACCEPTED, "C": ACCEPTED}, full=False)
    assert payloads == [{"listVersion": 5, "updateType": "Differential",
                         "localAuthorizationList": [{"idTag": "B"},
                                                    {"idTag": "C", "idTagInfo": ACCEPTED}]}]


def test_plan_nothing_when_in_sync() -> None:
    entries = {"A": ACCEPTED}
    assert local_list.plan_updates(held_version=2, held=entries, desired=entries,
                                   full=False) == []


def test_plan_full_starts_at_one_never_zero_and_above_the_reported_version() -> None:
    first = local_list.plan_updates(held_version=None, held=None, desired={}, full=True)
    assert first == [{"listVersion": 1, "updateType": "Full", "localAuthorizationList": []}]
    above = local_list.plan_updates(held_version=3, held=None, desired={"A": ACCEPTED},
                                    full=True, floor_version=9)
    assert [p["listVersion"] for p in above] == [10]


def test_plan_splits_by_send_local_list_max_length() -> None:
    desired = {f"T{i}": ACCEPTED for i in range(5)}
    payloads = local_list.plan_updates(held_version=1, held=None, desired=desired, full=True,
                                       max_per_message=2)
    assert [(p["listVersion"], p["updateType"], len(p["localAuthorizationList"]))
            for p in payloads] == [(2, "Full", 2), (3, "Differential", 2),
                                   (4, "Differential", 1)]
    rebuilt: dict[str, dict[str, str]] = {}
    for payload in payloads:
        rebuilt = local_list.apply_update(rebuilt, payload)
    assert rebuilt == desired


def test_limits_from_configuration_snapshot() -> None:
    snapshot = {"keys": [
        {"key": "SendLocalListMaxLength", "value": "50", "readonly": True},
        {"key": "LocalAuthListMaxLength", "value": "not a number", "readonly": True},
        {"key": "SupportedFeatureProfiles", "value": "Core, Reservation", "readonly": True}]}
    assert local_list.limits_from_configuration(snapshot) == ListLimits(
        per_message=50, list_size=None, supported=False)
    assert local_list.limits_from_configuration(None) == ListLimits()


def _payload(kind: str, *items: dict[str, object], version: int = 2) -> dict[str, object]:
    return {"listVersion": version, "updateType": kind, "localAuthorizationList": list(items)}


@pytest.mark.parametrize(("payload", "held", "limits", "reported", "code"), [
    (_payload("Full", version=0), None, ListLimits(), None, "PropertyConstraintViolation"),
    (_payload("Full", {"idTag": "A", "idTagInfo": ACCEPTED}, {"idTag": "A", "idTagInfo":
                                                                   BLOCKED}),
     None, ListLimits(), None, "PropertyConstraintViolation"),
    (_payload("Full", {"idTag": "A"}), None, ListLimits(), None,
     "OccurenceConstraintViolation"),
    (_payload("Differential", {"idTag": "A"}, {"idTag": "B"}), None,
     ListLimits(per_message=1), None, "ListTooLong"),
    (_payload("Differential", {"idTag": "C", "idTagInfo": ACCEPTED}), {"A": ACCEPTED,
                                                                        "B": ACCEPTED},
     ListLimits(list_size=2), None, "ListTooLong"),
    (_payload("Full"), None, ListLimits(supported=False), None, "NotSupported"),
    (_payload("Full"), None, ListLimits(), -1, "NotSupported"),
])
def test_refusals(payload: dict[str, object], held: dict[str, dict[str, str]] | None,
                  limits: ListLimits, reported: int | None, code: str) -> None:
    refusal = local_list.refusal("CP1", payload, held=held, limits=limits,
                                 reported_version=reported)
    assert refusal is not None and refusal[0] == code


def test_acceptable_requests_are_not_refused() -> None:
    differential = _payload("Differential", {"idTag": "A"}, {"idTag": "C", "idTagInfo":
                                                             ACCEPTED})
    assert local_list.refusal("CP1", differential, held={"A": ACCEPTED, "B": ACCEPTED},
                              limits=ListLimits(per_message=2, list_size=2),
                              reported_version=1) is None


def test_failure_reason_is_one_line() -> None:
    rejected = {"status": "rejected", "response": {"status": "VersionMismatch"},
                "payload": {"listVersion": 7}}
    assert local_list.failure_reason(rejected) == "SendLocalList v7 answered VersionMismatch"
    callerror = {"status": "callerror", "error_code": "InternalError",
                 "error_description": "boom", "payload": {"listVersion": 7}}
    assert local_list.failure_reason(callerror) == "callerror: InternalError boom"
