"""Schema-valid values GridLink could not store, nesting, binary frames: what the codec
answers (docs/bad-input.md, "Frames and the codec"). No sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway import codec
from gateway.session import Session
from services import ocpp16, value_bounds
from services.envelope import CsmsCall
from services.errors import OcppError

T = "2026-01-01T00:00:00Z"


def call(action: str, payload: dict[str, Any], unique_id: str = "a") -> str:
    return json.dumps([2, unique_id, action, payload])


def rejected(frame: str) -> tuple[str, str, str]:
    event = codec.decode(frame)
    assert isinstance(event, codec.Rejected), event
    return event.unique_id, event.error.code, event.error.description


def start(**fields: Any) -> dict[str, Any]:
    return {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": T, **fields}


@pytest.mark.parametrize(("action", "payload", "field"), [
    ("StartTransaction", start(meterStart=9223372036854775808), "meterStart"),
    ("StartTransaction", start(meterStart=-(2**62) - 1), "meterStart"),
    ("StartTransaction", start(connectorId=2**31), "connectorId"),
    ("StartTransaction", start(reservationId=-(2**31) - 1), "reservationId"),
    ("StopTransaction", {"transactionId": 2**31, "meterStop": 0, "timestamp": T},
     "transactionId"),
    ("StopTransaction", {"transactionId": 1, "meterStop": 2**70, "timestamp": T}, "meterStop"),
    ("MeterValues", {"connectorId": 1, "transactionId": 2**40, "meterValue": [
        {"timestamp": T, "sampledValue": [{"value": "1"}]}]}, "transactionId"),
    ("StatusNotification", {"connectorId": 2**32, "errorCode": "NoError",
                            "status": "Available"}, "connectorId"),
    ("LogStatusNotification", {"status": "Uploaded", "requestId": 2**31}, "requestId"),
    ("SignedFirmwareStatusNotification", {"status": "Installed", "requestId": -(2**31) - 1},
     "requestId"),
])
def test_integers_out_of_range_are_type_constraint_violations(
        action: str, payload: dict[str, Any], field: str) -> None:
    unique_id, code, description = rejected(call(action, payload))
    assert (unique_id, code) == ("a", "TypeConstraintViolation")
    assert field in description


@pytest.mark.parametrize(("action", "payload"), [
    ("StartTransaction", start(meterStart=2**62 - 1, connectorId=2**31 - 1,
                               reservationId=-(2**31))),
    ("StopTransaction", {"transactionId": -1, "meterStop": 2**40, "timestamp": T}),
    ("StartTransaction", start(timestamp="9999-12-31T23:59:59Z")),
    ("StartTransaction", start(timestamp="0001-01-01T00:00:00-01:00")),
])
def test_the_edges_of_the_ranges_pass(action: str, payload: dict[str, Any]) -> None:
    assert isinstance(codec.decode(call(action, payload)), codec.IncomingCall)


@pytest.mark.parametrize(("action", "payload"), [
    ("StartTransaction", start(timestamp="0001-01-01T00:00:00+01:00")),
    ("StopTransaction", {"transactionId": 1, "meterStop": 0,
                         "timestamp": "9999-12-31T23:59:59-01:00"}),
    ("StopTransaction", {"transactionId": 1, "meterStop": 0, "timestamp": T,
                         "transactionData": [{"timestamp": "0001-01-01T00:30:00+01:00",
                                              "sampledValue": [{"value": "1"}]}]}),
    ("MeterValues", {"connectorId": 1, "meterValue": [
        {"timestamp": "9999-12-31T23:00:00-01:30", "sampledValue": [{"value": "1"}]}]}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available",
                            "timestamp": "0001-01-01T00:00:00+14:00"}),
    ("SecurityEventNotification", {"type": "x", "timestamp": "0001-01-01T00:00:00+00:01"}),
])
def test_times_outside_years_1_to_9999_in_utc_are_type_constraint_violations(
        action: str, payload: dict[str, Any]) -> None:
    assert rejected(call(action, payload))[:2] == ("a", "TypeConstraintViolation")


def test_parse_time_refuses_what_it_cannot_convert_to_utc() -> None:
    with pytest.raises(ValueError, match="outside years"):
        ocpp16.parse_time("0001-01-01T00:00:00+01:00")


def test_csms_calls_are_bounded_too() -> None:
    with pytest.raises(OcppError) as refused:
        ocpp16.check_csms_call("UnlockConnector", {"connectorId": 2**31})
    assert refused.value.code == "TypeConstraintViolation"
    with pytest.raises(OcppError, match="limit: 18446744073709551616 is outside"):
        ocpp16.check_csms_call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
            "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": {
                "chargingRateUnit": "W", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 2**64}]}}})


@pytest.mark.parametrize(("action", "payload"), [
    ("GetLocalListVersion", {"listVersion": 2**31}),
    ("GetCompositeSchedule", {"status": "Accepted", "connectorId": 1,
                              "scheduleStart": "0001-01-01T00:00:00+01:00"}),
    ("GetCompositeSchedule", {"status": "Accepted", "chargingSchedule": {
        "chargingRateUnit": "W", "duration": 2**31,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1.0}]}}),
])
def test_a_chargers_result_out_of_range_never_reaches_a_service(
        action: str, payload: dict[str, Any]) -> None:
    session = Session("S")
    session.enqueue(CsmsCall(command_id="c", station="S", action=action, payload=(
        {"connectorId": 1, "duration": 60} if action == "GetCompositeSchedule" else {}),
        timeout_s=30))
    unique_id, _ = session.next_call()  # type: ignore[misc]
    outcome = session.answer(codec.IncomingResult(unique_id, payload), ocpp16.utcnow())
    assert outcome is not None
    assert (outcome.status, outcome.error_code, outcome.payload) == (
        "invalid", "TypeConstraintViolation", None)


# --- nesting ---------------------------------------------------------------------------------


def test_two_hundred_thousand_brackets_are_a_formation_violation() -> None:
    assert rejected("[" * 200_000)[:2] == ("-1", "FormationViolation")


def test_a_payload_nested_2000_deep_is_answered_with_its_id() -> None:
    deep = "[" * 2000 + "]" * 2000
    frame = f'[2, "deep-1", "DataTransfer", {{"vendorId": "v", "data": {deep}}}]'
    unique_id, code, description = rejected(frame)
    assert (unique_id, code) == ("deep-1", "FormationViolation")
    assert "deeper" in description


def test_nesting_the_parser_takes_but_the_codec_does_not() -> None:
    data: Any = "x"
    for _ in range(value_bounds.MAX_DEPTH):
        data = [data]
    assert rejected(call("DataTransfer", {"vendorId": "v", "data": data}))[:2] == (
        "a", "FormationViolation")


def test_the_deepest_real_payload_passes() -> None:
    frame = call("StopTransaction", {"transactionId": 1, "meterStop": 0, "timestamp": T,
                                     "transactionData": [{"timestamp": T, "sampledValue": [
                                         {"value": "1", "unit": "Wh"}]}]})
    assert isinstance(codec.decode(frame), codec.IncomingCall)


def test_too_deep_walks_without_recursion() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    assert value_bounds.too_deep(value)
    assert not value_bounds.too_deep([[{"a": [1]}]], limit=4)
    assert value_bounds.too_deep([[{"a": [1]}]], limit=3)


def test_a_broken_call_is_answered_with_the_id_its_head_shows() -> None:
    assert rejected('[2, "trunc-1", "Heartbeat", {')[:2] == ("trunc-1", "FormationViolation")
    assert rejected('[3, "r", {')[:2] == ("-1", "FormationViolation")  # no CALL: no id


def test_a_binary_frame_closes_the_connection_with_1003() -> None:
    event = codec.decode(b'[2, "b", "Heartbeat", {}]')
    assert isinstance(event, codec.Unacceptable) and event.code == 1003


def test_every_integer_a_charger_sends_is_bounded() -> None:
    planned = {(action, "/".join(path), kind)
               for action in ocpp16.CHARGER_ACTIONS
               for path, kind, _ in value_bounds._plan(ocpp16.CALL, action)}
    assert planned == {
        ("LogStatusNotification", "requestId", "int32"),
        ("MeterValues", "connectorId", "int32"),
        ("MeterValues", "transactionId", "int32"),
        ("SignedFirmwareStatusNotification", "requestId", "int32"),
        ("StartTransaction", "connectorId", "int32"),
        ("StartTransaction", "meterStart", "meter"),
        ("StartTransaction", "reservationId", "int32"),
        ("StatusNotification", "connectorId", "int32"),
        ("StopTransaction", "meterStop", "meter"),
        ("StopTransaction", "transactionId", "int32"),
    }
