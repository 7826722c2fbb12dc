"""Station passwords: salted Argon2id hashes (PBKDF2 of earlier releases still verify), the
checker that remembers only successes, keys in their grace period, profiles."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest

from services import stations

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_hash_is_salted_and_checks() -> None:
    first, second = stations.hash_password("s3cret"), stations.hash_password("s3cret")
    assert first != second  # a fresh salt each time
    assert stations.check_password("s3cret", first)
    assert not stations.check_password("other", first)
    assert not stations.check_password("s3cret", "not-a-hash")
    assert first.startswith("$argon2id$") and not stations.needs_rehash(first)


def _pbkdf2(password: str, iterations: int = 100_000) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def test_hashes_of_earlier_releases_verify_and_want_a_rehash() -> None:
    legacy = _pbkdf2("an-old-station-key")
    assert stations.check_password("an-old-station-key", legacy)
    assert not stations.check_password("another-key-entirely", legacy)
    assert not stations.check_password("x", "pbkdf2_sha256$bad")
    assert stations.needs_rehash(legacy)


@pytest.mark.parametrize(("key", "ok"), [
    ("0123456789abcdef", True), ("0" * 40, True), ("0123456789abcde", False),
    ("0" * 41, False), ("with:colon-0123456", True), ("tab\there-0123456789", False),
])
def test_authorization_key_length_and_characters(key: str, ok: bool) -> None:
    assert (stations.key_problem(key) is None) is ok


def test_generated_keys_are_forty_random_hex_digits() -> None:
    keys = {stations.generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 40 and stations.key_problem(k) is None for k in keys)
    int(keys.pop(), 16)


def test_profile_of_a_station_of_an_earlier_release_follows_its_password() -> None:
    assert stations.security_profile({"password_hash": "h"}) == 1
    assert stations.security_profile({}) == 0
    assert stations.security_profile({"security_profile": 3, "password_hash": "h"}) == 3


async def test_checker_remembers_successes_only() -> None:
    stored = stations.hash_password("s3cret")
    checker = stations.PasswordChecker(size=2)
    assert not await checker.check("wrong", stored)
    assert len(checker) == 0  # a failure always pays the full PBKDF2 again
    assert await checker.check("s3cret", stored)
    assert await checker.check("s3cret", stored)
    assert len(checker) == 1
    assert not await checker.check("s3cret", stations.hash_password("changed"))


async def test_checker_forgets_the_oldest_beyond_its_size() -> None:
    checker = stations.PasswordChecker(size=2)
    hashes = [stations.hash_password(f"pw{n}") for n in range(3)]
    for n, stored in enumerate(hashes):
        assert await checker.check(f"pw{n}", stored)
    assert len(checker) == 2


async def test_checks_run_at_most_concurrency_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = [0], [0]
    real = stations.check_password

    def counted(password: str, stored: str) -> bool:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            return real(password, stored)
        finally:
            running[0] -= 1

    monkeypatch.setattr(stations, "check_password", counted)
    checker = stations.PasswordChecker(concurrency=2)
    stored = stations.hash_password("right-key-0123456")
    results = await asyncio.gather(*(checker.check(f"guess-{n}", stored) for n in range(6)))
    assert results == [False] * 6
    assert most[0] == 2


async def test_previous_key_matches_only_during_its_grace() -> None:
    checker = stations.PasswordChecker()
    document = {"password_hash": stations.hash_password("new-key-0123456789"),
                "previous_password_hash": stations.hash_password("old-key-0123456789"),
                "previous_valid_until": NOW + timedelta(minutes=5)}
    assert (await checker.match("new-key-0123456789", document, NOW)).current
    during = await checker.match("old-key-0123456789", document, NOW)
    assert during and during.previous and not during.current
    assert not await checker.match("old-key-0123456789", document, NOW + timedelta(minutes=6))
    assert not await checker.match("neither-0123456789", document, NOW)


async def test_rotation_keeps_the_old_key_until_the_grace_ends(db) -> None:  # type: ignore[no-untyped-def]
    await stations.add_station(db, "CP-R", registration="Accepted", password="old-key-0123456789",
                               now=NOW)
    old = (await db.stations.find_one({"_id": "CP-R"}))["password_hash"]
    new = stations.hash_password("new-key-0123456789")
    until = NOW + timedelta(minutes=5)
    assert await stations.rotate_password(db, "CP-R", new, grace_until=until)
    assert await stations.rotate_password(db, "CP-R", new, grace_until=until)  # redelivered
    document = await db.stations.find_one({"_id": "CP-R"})
    assert document["password_hash"] == new
    assert document["previous_password_hash"] == old
    await stations.forget_previous_password(db, "CP-R")
    assert "previous_password_hash" not in await db.stations.find_one({"_id": "CP-R"})
    assert not await stations.rotate_password(db, "CP-NONE", new, grace_until=until)


async def test_a_scheduled_profile_applies_once_and_never_lowers(db) -> None:  # type: ignore[no-untyped-def]
    await stations.add_station(db, "CP-P", registration="Accepted", password="a-key-0123456789ab",
                               now=NOW)
    await stations.schedule_profile(db, "CP-P", 0)  # lower: ignored
    assert "next_profile" not in await db.stations.find_one({"_id": "CP-P"})
    await stations.schedule_profile(db, "CP-P", 2)
    await stations.apply_scheduled_profile(db, "CP-P", 3)  # not the scheduled one
    assert (await db.stations.find_one({"_id": "CP-P"}))["security_profile"] == 1
    await stations.apply_scheduled_profile(db, "CP-P", 2)
    document = await db.stations.find_one({"_id": "CP-P"})
    assert document["security_profile"] == 2 and "next_profile" not in document


async def test_rotation_keeps_the_profile_of_a_station_that_had_none_stored(db) -> None:  # type: ignore[no-untyped-def]
    await db.stations.insert_one({"_id": "CP-OLD", "registration": "Accepted"})  # profile 0
    assert await stations.rotate_password(db, "CP-OLD", stations.hash_password("k" * 20),
                                           grace_until=NOW)
    assert stations.security_profile(await db.stations.find_one({"_id": "CP-OLD"})) == 0


async def test_a_certificate_identity_names_one_station(db) -> None:  # type: ignore[no-untyped-def]
    add = stations.add_station
    await add(db, "CP-A", registration="Accepted", password=None, now=NOW, security_profile=3,
              certificate_cn="cp-a.example")
    await add(db, "CP-B", registration="Accepted", password=None, now=NOW, security_profile=3)
    for station, cn in (("CP-C", "cp-a.example"), ("CP-C", "CP-B"), ("cp-a.example", None)):
        with pytest.raises(stations.IdentityTaken):
            await add(db, station, registration="Accepted", password=None, now=NOW,
                      security_profile=3, certificate_cn=cn)
    await add(db, "CP-A", registration="Pending", password=None, now=NOW,  # itself: fine
              security_profile=3, certificate_cn="cp-a.example")
    assert await db.stations.count_documents({}) == 2
