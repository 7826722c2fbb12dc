"""What is never stored or shown: an AuthorizationKey's value, in requests and answers."""

from __future__ import annotations

from commands.redaction import (
    MARKER,
    holds_secret,
    redacted,
    redacted_answer,
    redacted_entry,
    withheld,
)

KEY = "0123456789abcdef0123"


def test_an_authorization_key_is_replaced_in_any_case_and_nothing_else_is() -> None:
    for name in ("AuthorizationKey", "authorizationkey", "AUTHORIZATIONKEY"):
        payload = {"key": name, "value": KEY}
        assert holds_secret("ChangeConfiguration", payload)
        assert redacted("ChangeConfiguration", payload) == {"key": name, "value": MARKER}
        assert payload["value"] == KEY  # the request itself is left as it was
        assert withheld("ChangeConfiguration", redacted("ChangeConfiguration", payload))
    other = {"key": "HeartbeatInterval", "value": "300"}
    assert redacted("ChangeConfiguration", other) is other and not holds_secret(
        "ChangeConfiguration", other)
    data = {"vendorId": "v", "messageId": "AuthorizationKey", "data": KEY}
    assert redacted("DataTransfer", data) is data  # only configuration keys are secrets
    assert not withheld("ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY})


def test_a_get_configuration_answer_never_keeps_a_key_value() -> None:
    answer = {"configurationKey": [
        {"key": "AuthorizationKey", "readonly": False, "value": KEY},
        {"key": "authorizationkey", "readonly": False},
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["Foo"]}
    assert redacted_answer("GetConfiguration", answer) == {"configurationKey": [
        {"key": "AuthorizationKey", "readonly": False, "value": MARKER},
        {"key": "authorizationkey", "readonly": False},
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["Foo"]}
    assert answer["configurationKey"][0]["value"] == KEY
    assert redacted_answer("ChangeConfiguration", {"status": "Accepted"}) == {
        "status": "Accepted"}
    assert redacted_answer("GetConfiguration", None) is None
    assert redacted_entry({"key": "AuthorizationKey", "value": None}) == {
        "key": "AuthorizationKey", "value": None}
