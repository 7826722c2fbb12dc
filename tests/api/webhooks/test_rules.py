"""The pure parts of webhooks: matching, signature, backoff, URL and address checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest

from api.webhooks import rules
from services.errors import ConfigurationError
from services.events import PUBLIC_EVENTS, event_id, stamped
from services.settings import load_settings


def test_patterns_match_names_families_and_everything() -> None:
    assert rules.matches("transaction.*", "transaction.updated")
    assert not rules.matches("transaction.*", "station.status")
    assert rules.matches("station.connected", "station.connected")
    assert not rules.matches("station.connected", "station.disconnected")
    assert all(rules.matches("*", event) for event in PUBLIC_EVENTS)
    assert rules.wanted(["station.booted", "command.*"], "command.finished")
    assert not rules.wanted(["station.booted"], "command.finished")


@pytest.mark.parametrize("bad", [[], ["transaction.begun"], ["health.*"], ["#"],
                                 ["transaction.*.x"], ["Transaction.started"]])
def test_patterns_that_match_no_public_event_are_refused(bad: list[str]) -> None:
    with pytest.raises(rules.InvalidSubscription) as refused:
        rules.check_patterns(bad)
    assert refused.value.field == "events"


def test_patterns_are_kept_in_order_without_duplicates() -> None:
    assert rules.check_patterns(["transaction.*", "*", "transaction.*"]) == [
        "transaction.*", "*"]


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"e1"}'
    header = rules.signature("whsec_x", 1_700_000_000, body)
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert rules.verify("whsec_x", header, body, now=1_700_000_100)
    assert not rules.verify("whsec_y", header, body, now=1_700_000_100)  # another secret
    assert not rules.verify("whsec_x", header, body + b" ", now=1_700_000_100)  # altered
    assert not rules.verify("whsec_x", header, body, now=1_700_000_000 + 301)  # replayed
    assert not rules.verify("whsec_x", "v1=" + expected, body, now=1_700_000_000)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempts, ceiling in ((1, 5), (2, 10), (3, 20), (10, 600)):
        waits = [rules.backoff_s(attempts, 5, 600, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 4  # jittered, not in step
    assert rules.give_up(12, 0, max_attempts=12, max_age_s=60)
    assert rules.give_up(1, 61, max_attempts=12, max_age_s=60)
    assert not rules.give_up(11, 59, max_attempts=12, max_age_s=60)


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.com/x", "only http"), ("file:///etc/passwd", "only http"),
    ("https://user:pw@example.com/", "credentials"), ("https:///path", "no host"),
    ("https://example.com:99999/", "not a URL"), ("https://example.com/#frag", "fragment"),
    ("https://example.com/" + "a" * 2100, "longer than"),
])
def test_only_plain_http_urls_are_taken(url: str, why: str) -> None:
    with pytest.raises(rules.InvalidSubscription, match=why) as refused:
        rules.check_url(url)
    assert refused.value.field == "url"


def test_url_parts() -> None:
    assert rules.check_url("https://example.com/hook") == ("https", "example.com", 443)
    assert rules.check_url("http://[2001:db8::1]:8080/") == ("http", "2001:db8::1", 8080)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.5",
                                     "169.254.169.254", "::1", "fe80::1", "fc00::1",
                                     "0.0.0.0", "::ffff:127.0.0.1", "100.64.0.1",
                                     "224.0.0.1", "240.0.0.1"])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert rules.address_problem(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:84e5", "8.8.8.8"])
def test_public_addresses_are_taken(address: str) -> None:
    assert rules.address_problem(address) is None


def test_the_body_is_the_event_in_an_envelope_with_its_stable_id() -> None:
    body = stamped("transaction.started", {"station": "CP-1", "transaction_id": 7}, 7)
    again = stamped("transaction.started", {"station": "CP-1", "transaction_id": 7}, 7)
    assert body["event_id"] == again["event_id"] == event_id("transaction.started", 7)
    assert event_id("transaction.stopped", 7) != body["event_id"]
    sent = json.loads(rules.delivery_body("transaction.started", body))
    assert sent == {"id": body["event_id"], "type": "transaction.started",
                    "createdAt": body["event_at"],
                    "data": {"station": "CP-1", "transactionId": 7}}


def test_secrets_are_random_and_marked() -> None:
    one, two = rules.new_secret(), rules.new_secret()
    assert one != two and one.startswith("whsec_") and len(one) > 40


def test_a_lease_shorter_than_an_attempt_is_a_bad_setting() -> None:
    with pytest.raises(ConfigurationError, match="GRIDLINK_WEBHOOK_LEASE_S"):
        load_settings(webhook_lease_s=5, webhook_timeout_s=10)
    assert load_settings(webhook_lease_s=11, webhook_timeout_s=10).webhook_lease_s == 11
