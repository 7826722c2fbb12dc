"""Station passwords: salted PBKDF2 hashes, and the checker that remembers only successes."""

from __future__ import annotations

from services import stations


def test_hash_is_salted_and_checks() -> None:
    first, second = stations.hash_password("s3cret"), stations.hash_password("s3cret")
    assert first != second  # a fresh salt each time
    assert stations.check_password("s3cret", first)
    assert not stations.check_password("other", first)
    assert not stations.check_password("s3cret", "not-a-hash")


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
