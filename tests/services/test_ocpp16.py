"""Schema validation, strict JSON and typed models of services.ocpp16."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services import id_tags, ocpp16
from services.errors import FormationViolation, NotSupported, error_for_code


def test_strict_json() -> None:
    assert ocpp16.loads_strict('{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    for text in ('{"a": NaN}', '{"a": Infinity}', '{"a": 1, "a": 2}'):
        with pytest.raises(ValueError):
            ocpp16.loads_strict(text)


def test_decimal_schemas_accept_one_decimal_limits() -> None:
    profile = {"chargingProfileId": 1, "stackLevel": 0,
               "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
               "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                   {"startPeriod": 0, "limit": 21.4}]}}
    ocpp16.check_csms_call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})


def test_direction_is_checked() -> None:
    with pytest.raises(NotSupported):
        ocpp16.check_csms_call("Heartbeat", {})
    with pytest.raises(FormationViolation):
        ocpp16.check_csms_call("ClearCache", None)


def test_typed_models_round_trip() -> None:
    request = ocpp16.request_model("StartTransaction", {
        "connectorId": 1, "idTag": "t", "meterStart": 5, "timestamp": "2026-01-01T00:00:00Z"})
    assert (request.connector_id, request.id_tag, request.meter_start) == (1, "t", 5)
    payload = ocpp16.response_payload(ocpp16.call_result.StartTransaction(
        transaction_id=3, id_tag_info={"status": "Accepted", "parent_id_tag": "p"}))
    assert payload == {"transactionId": 3, "idTagInfo": {"status": "Accepted",
                                                         "parentIdTag": "p"}}


def test_an_optional_field_left_out_is_none() -> None:
    # The ocpp library gives SecurityEventNotification.tech_info no default.
    request = ocpp16.request_model("SecurityEventNotification", {
        "type": "StartupOfTheDevice", "timestamp": "2026-01-01T00:00:00Z"})
    assert (request.type, request.tech_info) == ("StartupOfTheDevice", None)


def test_the_security_extensions_certificate_messages_are_supported() -> None:
    ocpp16.check_charger_call("SignCertificate", {"csr": "x"})
    ocpp16.check_csms_call("ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"})
    with pytest.raises(NotSupported):  # the direction still counts
        ocpp16.check_charger_call("InstallCertificate", {
            "certificateType": "CentralSystemRootCertificate", "certificate": "x"})


def test_optional_fields_the_library_requires_are_none() -> None:
    request = ocpp16.request_model("LogStatusNotification", {"status": "Idle"})
    assert (request.status, request.request_id) == ("Idle", None)
    request = ocpp16.request_model("SignedFirmwareStatusNotification",
                                   {"status": "Installed", "requestId": 4})
    assert (request.status, request.request_id) == ("Installed", 4)


def test_time_parsing() -> None:
    assert ocpp16.parse_time("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert ocpp16.parse_time("2026-01-01T01:00:00+01:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert ocpp16.iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    with pytest.raises(ValueError):
        ocpp16.parse_time("soon")


def test_error_aliases_map_to_1_6() -> None:
    assert error_for_code("FormatViolation").code == "FormationViolation"
    assert error_for_code("OccurrenceConstraintViolation").code == "OccurenceConstraintViolation"
    assert error_for_code("SomethingElse").code == "GenericError"


def test_id_tag_info() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert id_tags.info_from_document(None, now) == {"status": "Invalid"}
    assert id_tags.info_from_document({"status": "Blocked"}, now) == {"status": "Blocked"}
    expired = id_tags.info_from_document({"status": "Accepted",
                                          "expiry": now - timedelta(seconds=1)}, now)
    assert expired["status"] == "Expired"
    fine = id_tags.info_from_document({"status": "Accepted", "expiry": now + timedelta(days=1),
                                       "parent": "G"}, now)
    assert fine == {"status": "Accepted", "expiryDate": "2026-06-02T00:00:00.000Z",
                    "parentIdTag": "G"}


def test_every_csms_action_has_a_valid_example() -> None:
    from gridlink.command_examples import EXAMPLES, epilog

    assert set(EXAMPLES) == set(ocpp16.CSMS_ACTIONS)
    for action, payload in EXAMPLES.items():
        ocpp16.check_csms_call(action, payload)
        assert f"gridlink command CP001 {action} " in epilog()


def test_the_fast_conversions_give_what_the_librarys_give() -> None:
    """request_model and response_payload convert keys once per process and values in one
    pass: the same results as the ocpp library's camel/snake conversions and a JSON round
    trip, for the usual values, and the slow path for anything else."""
    import decimal

    from ocpp.charge_point import camel_to_snake_case
    from ocpp.v16 import call_result, enums

    payload = {"connectorId": 1, "transactionId": 7, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
            {"value": "1", "measurand": "SoC", "unit": "Percent"}]}]}
    request = ocpp16.request_model("MeterValues", payload)
    assert request.meter_value == camel_to_snake_case(payload)["meter_value"]
    responses = [
        call_result.StartTransaction(transaction_id=5, id_tag_info={
            "status": "Accepted", "expiry_date": None, "parent_id_tag": "P"}),
        call_result.BootNotification(current_time="2026-01-01T00:00:00Z", interval=300,
                                     status=enums.RegistrationStatus.accepted),
        call_result.Heartbeat(current_time=datetime(2026, 1, 1, tzinfo=UTC)),  # type: ignore[arg-type]
        call_result.StopTransaction(id_tag_info=None),
        {"a_b": [1, None, {"c_d": decimal.Decimal("1.5"), "soc": 2}], "x": (1, None)},
    ]
    for response in responses:
        assert ocpp16.response_payload(response) == ocpp16._response_payload_slow(response)
    assert ocpp16.response_payload(responses[1])["status"] == "Accepted"
    assert type(ocpp16.response_payload(responses[1])["status"]) is str
    with pytest.raises(ValueError):
        ocpp16.response_payload({"value": float("nan")})
