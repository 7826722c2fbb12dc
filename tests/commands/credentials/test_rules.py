"""What a ChangeConfiguration of AuthorizationKey or SecurityProfile must satisfy."""

from __future__ import annotations

import pytest

from commands.credentials.rules import (
    Offered,
    authorization_key_problem,
    parse_profile,
    profile_change_problem,
    security_key,
)
from tests.helpers import memory_settings

EVERYTHING = Offered(tls=True, client_certificates=True)


def test_security_keys_are_named_in_any_case() -> None:
    assert security_key("authorizationKEY") == "AuthorizationKey"
    assert security_key("securityprofile") == "SecurityProfile"
    assert security_key("HeartbeatInterval") is None


@pytest.mark.parametrize("key", ["short", "x" * 41, "0123456789\x7fabcdef", "0123456789\nabcdef"])
def test_an_authorization_key_has_rules(key: str) -> None:
    problem = authorization_key_problem(key)
    assert problem is not None and problem[0] == "PropertyConstraintViolation"


def test_a_good_key_passes() -> None:
    assert authorization_key_problem("0123456789abcdef0123456789abcdef01234567") is None
    assert authorization_key_problem("sixteen-chars-ok") is None


@pytest.mark.parametrize("value", ["", "x", "4", "-1", "1.0", "٣", "02x"])
def test_a_profile_is_an_integer_from_0_to_3(value: str) -> None:
    assert parse_profile(value) is None
    assert profile_change_problem(value, current=0, has_password=True,
                                  offered=EVERYTHING) == (
        "PropertyConstraintViolation", "SecurityProfile is an integer from 0 to 3")


def test_profiles_go_up_only() -> None:
    assert parse_profile(" 2 ") == 2
    for current, value in ((1, "1"), (2, "1"), (3, "0"), (0, "0")):
        problem = profile_change_problem(value, current=current, has_password=True,
                                         offered=EVERYTHING)
        assert problem is not None and "lower or the same" in problem[1]
    assert profile_change_problem("3", current=2, has_password=True, offered=EVERYTHING) is None


def test_each_profile_needs_what_it_authenticates_with() -> None:
    nothing = Offered(tls=False, client_certificates=False)
    tls_only = Offered(tls=True, client_certificates=False)
    problem = profile_change_problem("1", current=0, has_password=False, offered=nothing)
    assert problem is not None and "set an AuthorizationKey first" in problem[1]
    assert profile_change_problem("1", current=0, has_password=True, offered=nothing) is None
    problem = profile_change_problem("2", current=1, has_password=True, offered=nothing)
    assert problem is not None and "needs TLS" in problem[1]
    assert profile_change_problem("2", current=1, has_password=True, offered=tls_only) is None
    problem = profile_change_problem("3", current=2, has_password=True, offered=tls_only)
    assert problem is not None and "client certificates" in problem[1]
    assert profile_change_problem("3", current=0, has_password=False,
                                  offered=EVERYTHING) is None  # no password needed for 3


def test_what_gridlink_offers_follows_its_tls_settings() -> None:
    assert Offered.from_settings(memory_settings()) == Offered(False, False)
    assert Offered.from_settings(memory_settings(
        tls_cert_file="/tls/cert.pem", tls_key_file="/tls/key.pem")) == Offered(True, False)
    assert Offered.from_settings(memory_settings(
        tls_cert_file="/tls/cert.pem", tls_key_file="/tls/key.pem",
        tls_client_ca_file="/tls/ca.pem")) == Offered(True, True)
    assert Offered.from_settings(memory_settings(
        tls_trusted_proxies=["10.0.0.0/8"])) == Offered(True, True)
    # a commands pod without the gateway's certificate: chargers are told to use wss://
    assert Offered.from_settings(memory_settings(
        public_url="wss://ocpp.example.com/ocpp", tls_client_ca_file="/tls/ca.pem")) == Offered(
        True, True)
