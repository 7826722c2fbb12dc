"""Frames: payloads from the ocpp dataclasses, encoding, strict decoding, 1.6 error codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ocpp.v16 import call, enums
from ocpp.v16 import datatypes as dt

from simulator import frames
from simulator.errors import SimulatorError


def test_to_payload_is_camel_case_without_nones() -> None:
    payload = frames.to_payload(
        call.MeterValues(
            connector_id=1,
            transaction_id=None,
            meter_value=[
                dt.MeterValue(
                    timestamp="2026-01-01T00:00:00Z",
                    sampled_value=[dt.SampledValue(value="5", unit=enums.UnitOfMeasure.wh)],
                )
            ],
        )
    )
    assert payload == {
        "connectorId": 1,
        "meterValue": [
            {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "5", "unit": "Wh"}]}
        ],
    }
    frames.check(frames.CALL, "MeterValues", payload)


def test_encode_and_decode() -> None:
    text = frames.encode_call("1", "Heartbeat", {})
    assert text == '[2,"1","Heartbeat",{}]'
    assert frames.decode(text) == [2, "1", "Heartbeat", {}]
    assert json.loads(frames.encode_error("9", "NotImplemented", "x" * 600))[3] == "x" * 512
    for bad in ("nope", "{}", "[2]", '[2, 5, "A", {}]', '[3, "1", NaN]'):
        with pytest.raises(frames.FrameError):
            frames.decode(bad)


def test_timestamp_is_utc_milliseconds() -> None:
    assert frames.timestamp(0.0) == "1970-01-01T00:00:00.000Z"


def _profile(limit: float) -> dict[str, Any]:
    """A SetChargingProfile payload whose one schedule period has ``limit``."""
    return {
        "connectorId": 0,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


def test_decimal_schemas_accept_one_decimal_place() -> None:
    payload = {
        "connectorId": 0,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}],
            },
        },
    }
    frames.check(frames.CALL, "SetChargingProfile", payload)


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("Reset", {"type": 5}, "TypeConstraintViolation"),  # type
        ("RemoteStartTransaction", {"idTag": "X" * 21}, "TypeConstraintViolation"),  # maxLength
        ("Reset", {}, "OccurenceConstraintViolation"),  # required
        ("Reset", {"type": "Soft", "extra": 1}, "FormationViolation"),  # additionalProperties
        ("Reset", {"type": "Gentle"}, "PropertyConstraintViolation"),  # enum
        ("SetChargingProfile", _profile(limit=21.45), "PropertyConstraintViolation"),  # multipleOf
    ],
)
def test_schema_failures_map_to_the_1_6_error_codes(
    action: str, payload: dict[str, Any], code: str
) -> None:
    """OCPP-J 1.6 §4.2.3: a CiString20Type longer than 20 violates the field's data type."""
    with pytest.raises(frames.PayloadError) as failure:
        frames.check(frames.CALL, action, payload)
    assert failure.value.code == code
    assert isinstance(failure.value, SimulatorError)


def test_not_an_object_is_a_formation_violation_and_frame_errors_are_simulator_errors() -> None:
    with pytest.raises(frames.PayloadError) as failure:
        frames.check(frames.CALL, "Heartbeat", [])
    assert failure.value.code == "FormationViolation"
    with pytest.raises(SimulatorError):
        frames.decode("nope")
