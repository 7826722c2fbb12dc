"""Frames: payloads from the ocpp dataclasses, encoding, strict decoding."""

from __future__ import annotations

import json

import pytest
from ocpp.v16 import call, enums
from ocpp.v16 import datatypes as dt

from simulator import frames


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
    assert json.loads(frames.encode_error("9", "NotImplemented", "x" * 300))[3] == "x" * 255
    for bad in ("nope", "{}", "[2]", '[2, 5, "A", {}]', '[3, "1", NaN]'):
        with pytest.raises(frames.FrameError):
            frames.decode(bad)


def test_timestamp_is_utc_milliseconds() -> None:
    assert frames.timestamp(0.0) == "1970-01-01T00:00:00.000Z"


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
