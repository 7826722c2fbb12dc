"""Answers to CSMS-initiated calls: schema-valid CALLRESULTs and the actions that follow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sim_helpers import Bench

from simulator.answering import AnsweringCharger
from simulator.charger import Phase
from simulator.frames import CALL, CALLERROR, CALLRESULT, check

#: Every CSMS action with a valid request and the status the simulator should answer.
REQUESTS: list[tuple[str, dict[str, Any], str | None]] = [
    ("Reset", {"type": "Soft"}, "Accepted"),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}, "Accepted"),
    ("ChangeConfiguration", {"key": "NumberOfConnectors", "value": "4"}, "Rejected"),
    ("ChangeConfiguration", {"key": "NoSuchKey", "value": "1"}, "NotSupported"),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "soon"}, "Rejected"),
    ("GetConfiguration", {}, None),
    ("RemoteStartTransaction", {"idTag": "REMOTE1"}, "Accepted"),
    ("RemoteStopTransaction", {"transactionId": 1234}, "Rejected"),
    ("UnlockConnector", {"connectorId": 1}, "Unlocked"),
    ("UnlockConnector", {"connectorId": 9}, "NotSupported"),
    ("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, "Accepted"),
    ("ChangeAvailability", {"connectorId": 9, "type": "Inoperative"}, "Rejected"),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}, "Accepted"),
    ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 9}, "Rejected"),
    ("ClearCache", {}, "Accepted"),
    ("DataTransfer", {"vendorId": "GridLink", "data": "x"}, "Accepted"),
    ("DataTransfer", {"vendorId": "Other"}, "UnknownVendorId"),
    (
        "SetChargingProfile",
        {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 5,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.5}],
                },
            },
        },
        "Accepted",
    ),
    ("ClearChargingProfile", {"id": 77}, "Unknown"),
    ("GetCompositeSchedule", {"connectorId": 1, "duration": 3600}, "Accepted"),
    ("GetCompositeSchedule", {"connectorId": 5, "duration": 3600}, "Rejected"),
    (
        "ReserveNow",
        {"connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "R1", "reservationId": 3},
        "Accepted",
    ),
    ("CancelReservation", {"reservationId": 99}, "Rejected"),
    ("GetLocalListVersion", {}, None),
    ("SendLocalList", {"listVersion": 2, "updateType": "Full"}, "Accepted"),
    (
        "UpdateFirmware",
        {"location": "ftp://x/fw.bin", "retrieveDate": "2026-01-01T00:00:00Z"},
        None,
    ),
    ("GetDiagnostics", {"location": "ftp://x/"}, None),
]


@pytest.mark.parametrize(("action", "payload", "status"), REQUESTS)
def test_every_csms_call_gets_a_schema_valid_result(
    action: str, payload: dict[str, Any], status: str | None
) -> None:
    bench = Bench()
    bench.boot()
    frames = bench.csms(action, payload)
    result = frames[0]
    assert result[0] == CALLRESULT and result[1] == "c1"
    check(CALLRESULT, action, result[2])
    assert result[2].get("status") == status
    for follow_up in frames[1:]:
        assert follow_up[0] == CALL
        check(CALL, follow_up[2], follow_up[3])


def test_unknown_action_is_not_implemented_and_bad_payload_is_typed() -> None:
    bench = Bench()
    bench.boot()
    (error,) = bench.csms("Teleport", {})
    assert error[0] == CALLERROR and error[2] == "NotImplemented"
    (error,) = bench.csms("SignCertificate", {"csr": "x"})  # a charger's call, not a CSMS's
    assert error[2] == "NotSupported"
    (error,) = bench.csms("Reset", {"type": 5})
    assert error[2] == "TypeConstraintViolation"
    (error,) = bench.csms("Reset", {})
    assert error[2] == "OccurenceConstraintViolation"
    (error,) = bench.csms("Reset", {"type": "Soft", "extra": 1})
    assert error[2] == "FormationViolation"
    (error,) = bench.csms("Reset", {"type": "Gentle"})
    assert error[2] == "PropertyConstraintViolation"
    # A CiString20Type of 21 characters violates the field's data type (OCPP-J 1.6 §4.2.3).
    (error,) = bench.csms("RemoteStartTransaction", {"idTag": "X" * 21})
    assert error[2] == "TypeConstraintViolation"


def test_remote_start_then_remote_stop_run_a_real_transaction() -> None:
    bench = Bench()
    bench.boot()
    result, *follow = bench.csms("RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1})
    assert result[2] == {"status": "Accepted"}
    calls = bench.drain(follow)
    assert [(c[2], c[3].get("status")) for c in calls] == [
        ("StatusNotification", "Preparing"),
        ("StartTransaction", None),
        ("StatusNotification", "Charging"),
    ]
    assert calls[1][3]["idTag"] == "REMOTE1"
    connector = bench.charger.connectors[0]
    assert connector.transaction_id == 42 and connector.phase is Phase.CHARGING
    # MeterValues follow at MeterValueSampleInterval without the pacer.
    due = bench.charger.deadline()
    assert due is not None
    bench.now = due
    (meter,) = bench.drain([__import__("json").loads(f) for f in bench.charger.timer(due)])
    assert meter[2] == "MeterValues" and meter[3]["transactionId"] == 42
    result, *follow = bench.csms("RemoteStopTransaction", {"transactionId": 42}, "c2")
    assert result[2] == {"status": "Accepted"}
    calls = bench.drain(follow)
    assert [(c[2], c[3].get("reason") or c[3].get("status")) for c in calls] == [
        ("StopTransaction", "Remote"),
        ("StatusNotification", "Finishing"),
        ("StatusNotification", "Available"),
    ]
    assert connector.phase is Phase.IDLE and connector.transaction_id is None


def test_remote_start_authorizes_first_when_configured() -> None:
    bench = Bench()
    bench.boot()
    bench.csms("ChangeConfiguration", {"key": "AuthorizeRemoteTxRequests", "value": "true"})
    result, *follow = bench.csms("RemoteStartTransaction", {"idTag": "REMOTE1"}, "c2")
    assert result[2] == {"status": "Accepted"}
    assert bench.drain(follow)[0][2] == "Authorize"


def test_trigger_message_sends_the_message_after_the_answer() -> None:
    bench = Bench(connectors=2)
    bench.boot()
    frames = bench.csms("TriggerMessage", {"requestedMessage": "StatusNotification"})
    assert frames[0][0] == CALLRESULT
    calls = bench.drain(frames[1:])
    assert [c[3]["connectorId"] for c in calls] == [0, 1, 2]
    frames = bench.csms("TriggerMessage", {"requestedMessage": "BootNotification"}, "c2")
    assert [f[2] for f in bench.drain(frames[1:])] == ["BootNotification"]


def test_reset_stops_the_transaction_then_asks_to_reconnect() -> None:
    bench = Bench()
    bench.boot()
    _, *follow = bench.csms("RemoteStartTransaction", {"idTag": "REMOTE1"})
    bench.drain(follow)
    result, *follow = bench.csms("Reset", {"type": "Hard"}, "c2")
    assert result[2] == {"status": "Accepted"}
    assert not bench.charger.wants_close
    (stop,) = follow
    assert stop[2] == "StopTransaction" and stop[3]["reason"] == "HardReset"
    assert bench.reply(stop) == []
    assert bench.charger.wants_close
    bench.charger.disconnected(bench.tick())
    assert bench.connect()[2] == "BootNotification"


def test_change_availability_is_scheduled_during_a_transaction() -> None:
    bench = Bench()
    bench.boot()
    _, *follow = bench.csms("RemoteStartTransaction", {"idTag": "REMOTE1"})
    bench.drain(follow)
    (result,) = bench.csms("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, "c2")
    assert result[2] == {"status": "Scheduled"}
    _, *follow = bench.csms("RemoteStopTransaction", {"transactionId": 42}, "c3")
    calls = bench.drain(follow)
    assert calls[-1][3]["status"] == "Unavailable"
    assert not bench.charger.connectors[0].operative


def test_reservation_and_local_list_round_trip() -> None:
    bench = Bench()
    bench.boot()
    reserve = {
        "connectorId": 1,
        "expiryDate": "2030-01-01T00:00:00Z",
        "idTag": "R1",
        "reservationId": 3,
    }
    result, status = bench.csms("ReserveNow", reserve)
    assert result[2] == {"status": "Accepted"} and status[3]["status"] == "Reserved"
    bench.reply(status)
    assert bench.step() is None  # the pacer leaves a reserved connector alone
    result, status = bench.csms("CancelReservation", {"reservationId": 3}, "c2")
    assert result[2] == {"status": "Accepted"} and status[3]["status"] == "Available"
    bench.csms(
        "SendLocalList",
        {
            "listVersion": 4,
            "updateType": "Full",
            "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}],
        },
        "c3",
    )
    (version,) = bench.csms("GetLocalListVersion", {}, "c4")
    assert version[2] == {"listVersion": 4}
    (mismatch,) = bench.csms(
        "SendLocalList", {"listVersion": 3, "updateType": "Differential"}, "c5"
    )
    assert mismatch[2] == {"status": "VersionMismatch"}


def test_firmware_and_diagnostics_report_progress() -> None:
    bench = Bench()
    bench.boot()
    result, *follow = bench.csms(
        "UpdateFirmware", {"location": "ftp://x/fw", "retrieveDate": "2026-01-01T00:00:00Z"}
    )
    assert result[2] == {}
    assert [c[3]["status"] for c in bench.drain(follow)] == [
        "Downloading",
        "Downloaded",
        "Installing",
        "Installed",
    ]
    result, *follow = bench.csms("GetDiagnostics", {"location": "ftp://x/"}, "c2")
    assert result[2]["fileName"].startswith("diagnostics-")
    assert [c[3]["status"] for c in bench.drain(follow)] == ["Uploading", "Uploaded"]


def test_configuration_changes_take_effect() -> None:
    bench = Bench()
    bench.boot()
    bench.csms("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "5"})
    assert bench.charger.deadline() == pytest.approx(bench.now + 5)
    (result,) = bench.csms("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]}, "c2")
    assert result[2] == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "5"}],
        "unknownKey": ["Nope"],
    }
    assert bench.stats.csms_calls[("ChangeConfiguration", "Accepted")] == 1


def test_a_charger_offers_everything_the_answers_use() -> None:
    charger = Bench().charger
    members = set(AnsweringCharger.__annotations__) | {
        name for name in vars(AnsweringCharger) if not name.startswith("_")
    }
    assert members and not [m for m in sorted(members) if not hasattr(charger, m)]


def test_authorization_key_is_write_only_and_a_new_one_reconnects() -> None:
    bench = Bench(authorization_key="the-first-password", security_profile=2)
    bench.boot()
    assert bench.charger.authorization_key == "the-first-password"
    (result,) = bench.csms("GetConfiguration", {"key": ["AuthorizationKey", "SecurityProfile"]})
    assert result[2]["configurationKey"] == [
        {"key": "AuthorizationKey", "readonly": False},  # write-only: no value (A01.FR.12)
        {"key": "SecurityProfile", "readonly": True, "value": "2"},
    ]
    (everything,) = bench.csms("GetConfiguration", {}, "c2")
    assert "the-first-password" not in json.dumps(everything)
    (short,) = bench.csms(
        "ChangeConfiguration", {"key": "AuthorizationKey", "value": "short"}, "c3"
    )
    assert short[2] == {"status": "Rejected"} and not bench.charger.wants_close
    # A CALL of the charger's own is in flight: the connection closes once it is answered.
    heartbeat = bench.csms("TriggerMessage", {"requestedMessage": "Heartbeat"}, "c4")[1]
    bench.charger.enqueue(bench.charger.script.status_call(1))  # queued behind it
    (accepted,) = bench.csms(
        "ChangeConfiguration", {"key": "AuthorizationKey", "value": "the-second-password"}, "c5"
    )
    assert accepted[2] == {"status": "Accepted"} and not bench.charger.wants_close
    assert bench.reply(heartbeat) == []  # nothing more is sent on this connection
    assert bench.charger.wants_close and bench.charger.close_reason == "new password"
    assert bench.charger.authorization_key == "the-second-password"
    bench.charger.disconnected(bench.tick())
    assert [p.action for p in bench.charger.queue] == ["StatusNotification"]  # kept (A01)
    bench.connect()
    assert not bench.charger.wants_close
