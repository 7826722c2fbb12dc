"""The one character set of charge point identities (handshake and registry)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from gateway.handshake import basic_password, station_id
from services import station_ids, stations


@pytest.mark.parametrize("identity", [
    "CP-1", "RDAM 123", "CP|1", "CP:1@site", "a.b_c~d*e+f=g!h$i&j'k(l)m,n;o", "Zürich-7",
    "東京-01", "Ελλάδα", "x" * 48,
])
def test_taken(identity: str) -> None:
    assert station_ids.check(identity, 48) == identity
    assert station_ids.problem(identity, 48) is None


@pytest.mark.parametrize(("identity", "why"), [
    ("", "empty"),
    ("x" * 49, "at most 48"),
    ("CP\x7f1", "control character"),
    ("CP\x001", "control character"),
    ("CP\u202e1", "RIGHT-TO-LEFT OVERRIDE"),
    ("CP\u2066x", "LEFT-TO-RIGHT ISOLATE"),
    ("CP\u200b1", "ZERO WIDTH SPACE"),
    ("CP\u200d1", "ZERO WIDTH JOINER"),
    ("\ufeffCP", "ZERO WIDTH NO-BREAK SPACE"),
    ("CP\u00a01", "NO-BREAK SPACE"),
    (" CP", "starts or ends with a space"),
    ("CP ", "starts or ends with a space"),
    ("CP  1", "two spaces"),
    ("CP\t1", "control character"),
    ("CP%1", "PERCENT SIGN"),
    ("CP#1", "NUMBER SIGN"),
    ("CP\\1", "REVERSE SOLIDUS"),
    ('CP"1', "QUOTATION MARK"),
    ("CP<1>", "LESS-THAN SIGN"),
    ("CP\U0001f600", "GRINNING FACE"),
    ("\u0301x", "COMBINING ACUTE ACCENT"),
])
def test_refused_with_a_reason(identity: str, why: str) -> None:
    with pytest.raises(station_ids.InvalidStationId, match="station id") as refused:
        station_ids.check(identity, 48)
    assert why in str(refused.value)
    assert "\n" not in str(refused.value)
    assert identity not in str(refused.value) or identity.isascii()  # printed escaped


def test_a_decomposed_identity_is_the_composed_one() -> None:
    assert station_ids.check("Cafe\u0301", 48) == "Caf\u00e9"
    assert station_id("/ocpp/Cafe%CC%81", 48) == "Caf\u00e9"  # the charger's NFD URL
    assert station_ids.problem("Cafe\u0301") == "it is not in Unicode NFC"


@pytest.mark.parametrize("segment", [
    "CP%7F1", "CP%E2%80%AE1", "CP%E2%80%8B1", "CP%201%20", "%20CP", "CP%20%201", "CP%C2%A01",
])
def test_the_handshake_refuses_what_the_registry_refuses(segment: str) -> None:
    assert station_id("/ocpp/" + segment, 48) is None


def test_basic_auth_user_compared_in_nfc() -> None:
    import base64

    header = "Basic " + base64.b64encode("Cafe\u0301:pass\u0301word".encode()).decode()
    assert basic_password(header, "Caf\u00e9") == "pass\u0301word"  # the password as sent


async def test_the_registry_refuses_and_normalises_too(db: AsyncDatabase) -> None:  # type: ignore[type-arg]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(station_ids.InvalidStationId):
        await stations.add_station(db, "CP\u200b1", registration="Accepted", password=None,
                                   now=now)
    await stations.add_station(db, "Cafe\u0301", registration="Accepted", password=None,
                               now=now)
    assert [d["_id"] async for d in db[stations.COLLECTION].find()] == ["Caf\u00e9"]
