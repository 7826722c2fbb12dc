"""Smart Charging rules without a database: what ClearChargingProfile selects, what a charger
reported it can do, what a profile must satisfy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from commands.smart_charging import rules as charging_rules
from commands.smart_charging.rules import ChargerCaps, clear_problem, set_profile_problem
from services.ocpp16 import iso, utcnow
from tests.helpers import charging_profile as profile


@pytest.mark.parametrize(("criteria", "matches"), [
    ({}, True),
    ({"id": 7}, True),
    ({"id": 8, "connectorId": 1}, False),  # an id ignores the other fields
    ({"id": 7, "connectorId": 2}, True),
    ({"connectorId": 1, "chargingProfilePurpose": "TxProfile"}, True),
    ({"connectorId": 1, "stackLevel": 2}, False),
    ({"chargingProfilePurpose": "TxDefaultProfile"}, False),
])
def test_clear_matches(criteria: dict, matches: bool) -> None:
    assert charging_rules.clear_matches(criteria, charging_profile_id=7, connector=1,
                                  purpose="TxProfile", stack_level=1) is matches


def test_caps_from_configuration_snapshot() -> None:
    snapshot = {"keys": [
        {"key": "NumberOfConnectors", "value": "2"},
        {"key": "ChargeProfileMaxStackLevel", "value": "8"},
        {"key": "ChargingScheduleAllowedChargingRateUnit", "value": "Current"},
        {"key": "ChargingScheduleMaxPeriods", "value": "24"},
        {"key": "MaxChargingProfilesInstalled", "value": "not a number"}]}
    caps = charging_rules.caps_from(snapshot)
    assert caps == charging_rules.ChargerCaps(connectors=2, max_stack_level=8,
                                        units=frozenset({"A"}), max_periods=24)
    assert caps.unit_for("W") == "A" and caps.unit_for("A") == "A"
    assert charging_rules.caps_from(None) == charging_rules.ChargerCaps()
    assert charging_rules.caps_from(None).unit_for("W") == "W"
    both = charging_rules.caps_from({"keys": [
        {"key": "ChargingScheduleAllowedChargingRateUnit", "value": "Current,Power"}]})
    assert both.units == frozenset({"A", "W"})


NOW = utcnow()
LATER = iso(NOW + timedelta(days=1))
EARLIER = iso(NOW - timedelta(days=1))


@pytest.mark.parametrize(("payload", "caps", "code", "text"), [
    (profile("ChargePointMaxProfile", connector=1), ChargerCaps(), "Property",
     "connectorId 0"),
    (profile("TxProfile", connector=0, transactionId=1), ChargerCaps(), "Property",
     "connectorId > 0"),
    (profile(transactionId=5), ChargerCaps(), "Property", "TxProfile only"),
    (profile(stack_level=-1), ChargerCaps(), "Property", "stackLevel"),
    (profile(stack_level=4), ChargerCaps(max_stack_level=3), "Property",
     "ChargeProfileMaxStackLevel"),
    (profile(chargingProfileKind="Recurring", schedule={"startSchedule": EARLIER}),
     ChargerCaps(), "Occurence", "recurrencyKind"),
    (profile(recurrencyKind="Daily"), ChargerCaps(), "Property", "only for a Recurring"),
    (profile(chargingProfileKind="Absolute"), ChargerCaps(), "Occurence", "startSchedule"),
    (profile(validTo=EARLIER), ChargerCaps(), "Property", "validTo is in the past"),
    (profile(validFrom=LATER, validTo=iso(NOW + timedelta(hours=1))), ChargerCaps(),
     "Property", "after validFrom"),
    (profile(schedule={"chargingSchedulePeriod": []}), ChargerCaps(), "Occurence",
     "at least one"),
    (profile(schedule={"chargingSchedulePeriod": [{"startPeriod": 60, "limit": 6}]}),
     ChargerCaps(), "Property", "first startPeriod"),
    (profile(schedule={"chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6},
                                                  {"startPeriod": 0, "limit": 8}]}),
     ChargerCaps(), "Property", "increase"),
    (profile(limit=-1), ChargerCaps(), "Property", "negative"),
    (profile(schedule={"chargingSchedulePeriod": [
        {"startPeriod": 0, "limit": 6, "numberPhases": 4}]}), ChargerCaps(), "Property",
     "numberPhases"),
    (profile(schedule={"duration": 60, "chargingSchedulePeriod": [
        {"startPeriod": 0, "limit": 6}, {"startPeriod": 60, "limit": 8}]}), ChargerCaps(),
     "Property", "never run"),
    (profile(chargingProfileKind="Recurring", recurrencyKind="Daily",
             schedule={"startSchedule": EARLIER, "chargingSchedulePeriod": [
                 {"startPeriod": 0, "limit": 6}, {"startPeriod": 90_000, "limit": 8}]}),
     ChargerCaps(), "Property", "recurrence period"),
    (profile(schedule={"chargingRateUnit": "W"}), ChargerCaps(units=frozenset({"A"})),
     "UnsupportedUnit", "allows A"),
    (profile(schedule={"chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6},
                                                  {"startPeriod": 60, "limit": 8}]}),
     ChargerCaps(max_periods=1), "TooManyPeriods", "at most 1"),
    (profile(connector=3), ChargerCaps(connectors=2), "UnknownConnector", "has 2"),
    (profile(connector=-1), ChargerCaps(), "Property", "negative"),
])
def test_set_profile_rules(payload: dict[str, Any], caps: ChargerCaps, code: str,
                           text: str) -> None:
    problem = set_profile_problem(payload, caps, NOW)
    assert problem is not None
    assert problem[0].startswith(code) and text in problem[1], problem


@pytest.mark.parametrize("payload", [
    profile("ChargePointMaxProfile", connector=0),
    profile(chargingProfileKind="Recurring", recurrencyKind="Weekly", validFrom=EARLIER,
            validTo=LATER, schedule={"startSchedule": EARLIER, "duration": 86_400,
                                     "minChargingRate": 6, "chargingSchedulePeriod": [
                                         {"startPeriod": 0, "limit": 11, "numberPhases": 3},
                                         {"startPeriod": 28_800, "limit": 6.5}]}),
    profile("TxProfile", transactionId=3, chargingProfileKind="Absolute",
            schedule={"startSchedule": EARLIER}),
])
def test_set_profile_rules_accept_good_profiles(payload: dict[str, Any]) -> None:
    caps = ChargerCaps(connectors=2, max_stack_level=3, units=frozenset({"A"}), max_periods=5)
    assert set_profile_problem(payload, caps, NOW) is None


@pytest.mark.parametrize(("payload", "ok"), [
    ({}, True), ({"id": 3, "connectorId": 0, "chargingProfilePurpose": "TxProfile"}, True),
    ({"connectorId": -1}, False), ({"stackLevel": -2}, False),
    ({"connectorId": 2, "chargingProfilePurpose": "ChargePointMaxProfile"}, False),
    ({"connectorId": 0, "chargingProfilePurpose": "TxProfile"}, False),
    ({"connectorId": 0, "chargingProfilePurpose": "ChargePointMaxProfile"}, True),
])
def test_clear_rules(payload: dict[str, Any], ok: bool) -> None:
    assert (clear_problem(payload) is None) is ok


def composite(asked: str | None, answered: str | None) -> dict[str, Any]:
    schedule = {"chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}
    if answered is not None:
        schedule["chargingRateUnit"] = answered
    payload: dict[str, Any] = {"connectorId": 1, "duration": 600}
    if asked is not None:
        payload["chargingRateUnit"] = asked
    return charging_rules.composite_document({
        "_id": "c1", "station": "CP-1", "payload": payload,
        "response": {"status": "Accepted", "connectorId": 1, "chargingSchedule": schedule}})


def test_a_composite_schedule_in_another_unit_is_kept_as_said_and_flagged() -> None:
    other = composite("W", "A")
    assert (other["unit"], other["asked_unit"], other["flags"]) == ("A", "W", ["unit_mismatch"])
    assert other["charging_schedule"]["chargingSchedulePeriod"][0]["limit"] == 16  # as said
    same = composite("A", "A")
    assert (same["unit"], same["flags"]) == ("A", [])
    unasked = composite(None, "W")  # no unit asked: whatever the charger uses
    assert (unasked["unit"], unasked["flags"]) == ("W", [])
