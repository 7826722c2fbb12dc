"""Reservation rules without a database: tag matching, connector checks, payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from commands.reservations import rules as reservations
from commands.reservations.rules import StationFacts


@pytest.mark.parametrize(("tag", "parent", "matches"), [
    ("TAG1", None, True),
    ("tag1", None, True),  # IdToken is case-insensitive (CiString20)
    ("OTHER", "GROUP", True),  # a member of the reservation's group
    ("OTHER", None, False),
    ("OTHER", "ELSE", False),
    ("GROUP", None, True),  # the group tag itself
])
def test_tag_matches_idtag_or_parent(tag: str, parent: str | None, matches: bool) -> None:
    reservation = {"id_tag": "TAG1", "parent_id_tag": "GROUP"}
    assert reservations.tag_matches(reservation, tag, parent) is matches


def test_tag_matches_without_reservation_parent() -> None:
    reservation = {"id_tag": "TAG1", "parent_id_tag": None}
    assert not reservations.tag_matches(reservation, "OTHER", None)
    assert reservations.tag_matches(reservation, "OTHER", "TAG1")


def test_facts_from_configuration() -> None:
    snapshot = {"keys": [
        {"key": "NumberOfConnectors", "value": "2", "readonly": True},
        {"key": "ReserveConnectorZeroSupported", "value": "True", "readonly": True},
        {"key": "SupportedFeatureProfiles", "value": "Core,Reservation", "readonly": True}]}
    facts = reservations.facts_from(snapshot, {1})
    assert facts == StationFacts(frozenset({1}), number_of_connectors=2, zero_supported=True,
                                 profile_supported=True)
    unknown = reservations.facts_from({"keys": [], "unknown_keys":
                                       ["ReserveConnectorZeroSupported"]}, set())
    assert unknown.zero_supported is False
    assert reservations.facts_from(None, set()).zero_supported is None
    said_false = reservations.facts_from({"keys": [
        {"key": "ReserveConnectorZeroSupported", "value": "false", "readonly": True}]}, set())
    assert said_false.zero_supported is False


@pytest.mark.parametrize(("snapshot", "code"), [
    ({"keys": [{"key": "ReserveConnectorZeroSupported", "value": "true"}]}, None),
    ({"keys": [{"key": "ReserveConnectorZeroSupported", "value": "false"}]},
     "ConnectorZeroNotSupported"),
    ({"keys": [], "unknown_keys": ["ReserveConnectorZeroSupported"]},
     "ConnectorZeroNotSupported"),  # not set: the charger would answer Rejected
    (None, None),  # never read: sent, the charger answers
    ({"keys": [{"key": "NumberOfConnectors", "value": "2"}]}, None),  # read, key not asked
])
def test_connector_zero_follows_the_configuration_snapshot(
        snapshot: dict[str, Any] | None, code: str | None) -> None:
    facts = reservations.facts_from(snapshot, {1})
    refusal = reservations.connector_refusal("CP1", 0, facts)
    assert (refusal[0] if refusal else None) == code


@pytest.mark.parametrize(("connector", "facts", "code"), [
    (1, StationFacts(frozenset({1, 2})), None),
    (3, StationFacts(frozenset({1, 2})), "UnknownConnector"),
    (3, StationFacts(frozenset(), number_of_connectors=3), None),
    (4, StationFacts(frozenset(), number_of_connectors=3), "UnknownConnector"),
    (-1, StationFacts(frozenset({1})), "PropertyConstraintViolation"),
    (0, StationFacts(frozenset({1}), zero_supported=True), None),
    (0, StationFacts(frozenset({1}), zero_supported=False), "ConnectorZeroNotSupported"),
    (0, StationFacts(frozenset({1})), None),  # not known: sent, the charger answers
    (1, StationFacts(frozenset({1}), profile_supported=False), "NotSupported"),
])
def test_connector_refusal(connector: int, facts: StationFacts, code: str | None) -> None:
    refusal = reservations.connector_refusal("CP1", connector, facts)
    assert (refusal[0] if refusal else None) == code


def test_reserve_now_payload() -> None:
    expiry = datetime(2026, 11, 23, 20, 15, tzinfo=UTC)
    assert reservations.reserve_now_payload(
        connector=1, id_tag="TAG1", expiry=expiry, reservation_id=7, parent_id_tag=None) == {
        "connectorId": 1, "expiryDate": "2026-11-23T20:15:00.000Z", "idTag": "TAG1",
        "reservationId": 7}
    with_parent = reservations.reserve_now_payload(
        connector=0, id_tag="TAG1", expiry=expiry, reservation_id=8, parent_id_tag="G")
    assert with_parent["parentIdTag"] == "G"
