"""The codec maps every malformed frame to the exact OCPP 1.6 error code, without sockets."""

from __future__ import annotations

import json

import pytest

from gateway import codec


def rejected(frame: str) -> tuple[str, str]:
    event = codec.decode(frame)
    assert isinstance(event, codec.Rejected), event
    return event.unique_id, event.error.code


def test_valid_call() -> None:
    event = codec.decode('[2, "a", "Heartbeat", {}]')
    assert event == codec.IncomingCall("a", "Heartbeat", {})


def test_result_and_error_frames() -> None:
    assert codec.decode('[3, "a", {"status": "Accepted"}]') == codec.IncomingResult(
        "a", {"status": "Accepted"})
    assert codec.decode('[4, "a", "NotSupported", "no", {}]') == codec.IncomingError(
        "a", "NotSupported", "no", {})


@pytest.mark.parametrize("frame", ['[5, "a", "x"]', '[0]', '[99, "a", "Heartbeat", {}]'])
def test_unknown_message_type_is_ignored(frame: str) -> None:
    assert codec.decode(frame) is None


@pytest.mark.parametrize(("frame", "expected"), [
    ("not json", ("-1", "FormationViolation")),
    ('{"a": 1}', ("-1", "FormationViolation")),
    ("[]", ("-1", "FormationViolation")),
    ('["2", "a", "Heartbeat", {}]', ("a", "FormationViolation")),
    ('[2, "a", "Heartbeat", {}, {}]', ("a", "FormationViolation")),
    ('[2, "a", "Heartbeat"]', ("a", "ProtocolError")),
    ('[2, 17, "Heartbeat", {}]', ("-1", "ProtocolError")),
    (json.dumps([2, "x" * 37, "Heartbeat", {}]), ("-1", "ProtocolError")),
    ('[2, "a", 7, {}]', ("a", "FormationViolation")),
    ('[2, "a", "Heartbeat", []]', ("a", "FormationViolation")),
    ('[2, "a", "Unheard", {}]', ("a", "NotImplemented")),
    ('[2, "a", "RemoteStartTransaction", {"idTag": "x"}]', ("a", "NotSupported")),
    ('[2, "a", "Authorize", {}]', ("a", "OccurenceConstraintViolation")),
    ('[2, "a", "Authorize", {"idTag": 5}]', ("a", "TypeConstraintViolation")),
    ('[2, "a", "Authorize", {"idTag": "123456789012345678901"}]',
     ("a", "TypeConstraintViolation")),
    ('[2, "a", "BootNotification", {"chargePointVendor": "v", "chargePointModel": "m",'
     ' "x": 1}]', ("a", "FormationViolation")),
    ('[2, "a", "StatusNotification", {"connectorId": 1, "errorCode": "Oops",'
     ' "status": "Available"}]', ("a", "PropertyConstraintViolation")),
    ('[2, "a", "StartTransaction", {"connectorId": 1, "idTag": "t", "meterStart": 1,'
     ' "timestamp": "yesterday"}]', ("a", "TypeConstraintViolation")),
    ('[2, "a", "DataTransfer", {"vendorId": "v", "data": NaN}]', ("a", "FormationViolation")),
    ('[2, "a", "Authorize", {"idTag": "x", "idTag": "y"}]', ("a", "FormationViolation")),
    ('[4, "a", 5, "d", {}]', ("a", "FormationViolation")),
])
def test_rejections(frame: str, expected: tuple[str, str]) -> None:
    assert rejected(frame) == expected


def test_never_sends_2_0_error_names() -> None:
    frame = json.loads(codec.encode_error("a", "FormatViolation", "d"))
    assert frame == [4, "a", "GenericError", "d", {}]
    assert json.loads(codec.encode_error("a", "OccurenceConstraintViolation", "d"))[2] == \
        "OccurenceConstraintViolation"


def test_encoders_refuse_nan() -> None:
    with pytest.raises(ValueError):
        codec.encode_result("a", {"x": float("nan")})
