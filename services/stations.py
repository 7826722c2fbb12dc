"""The station registry (collection ``stations``), shared by authz, commands and the CLI.

``{_id: chargePointId, registration: Accepted|Pending|Rejected, security_profile: 0-3,
password_hash, previous_password_hash, previous_valid_until, certificate_cn, next_profile,
boot, last_boot, last_seen, created_at}``.

Passwords (the AuthorizationKey of security profiles 1 and 2) are stored only as salted
Argon2id hashes (OWASP's first choice: 19 MiB, 2 passes); PBKDF2 hashes of earlier releases
still verify and are replaced on the next successful check. ``previous_password_hash`` is
the key a charger used before it accepted a new AuthorizationKey (A01), accepted until
``previous_valid_until`` or until the charger connects with the new key.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services import station_ids
from services.store import IndexSpec

COLLECTION = "stations"
PROFILES = (0, 1, 2, 3)  # security profiles (Security Whitepaper ed. 2, §2)
INDEXES: IndexSpec = {COLLECTION: [
    IndexModel("last_seen"),
    # One certificate identity per station (A00.FR.427); stations without one use their id.
    IndexModel("certificate_cn", unique=True, sparse=True),
]}
#: AuthorizationKey length: at least 16 bytes, at most 20 as 40 hex digits (A00.FR.205).
KEY_MIN, KEY_MAX = 16, 40
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_LEGACY = "pbkdf2_sha256$"


def certificate_identity(document: dict[str, Any] | None, station: str) -> str:
    """The common name (CN) a station's client certificate must carry (A00.FR.405): the one
    set for it (``certificate_cn``), else its charge point identity."""
    return str((document or {}).get("certificate_cn") or station)


def security_profile(document: dict[str, Any] | None) -> int:
    """A station's security profile. Stations of earlier releases have none stored: with a
    password they are profile 1, without one profile 0."""
    document = document or {}
    if document.get("security_profile") is not None:
        return int(document["security_profile"])
    return 1 if document.get("password_hash") else 0


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an AuthorizationKey (A00.FR.205), or None."""
    if len(key.encode()) < KEY_MIN or len(key) > KEY_MAX:
        return f"an AuthorizationKey is {KEY_MIN} to {KEY_MAX} characters"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        return "an AuthorizationKey holds no control characters"
    return None


def generate_key() -> str:
    """A random AuthorizationKey: 20 random bytes as 40 hex digits (A00.FR.205, A01.FR.07)."""
    return secrets.token_hex(20)


def hash_password(password: str) -> str:
    """A salted Argon2id hash of ``password``."""
    return _HASHER.hash(password)


def check_password(password: str, stored: str) -> bool:
    """Does ``password`` match ``stored`` (Argon2id, or PBKDF2 of earlier releases)?
    Constant-time in the password."""
    if stored.startswith(_LEGACY):
        try:
            _, iterations, salt, digest = stored.split("$")
            candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                            int(iterations))
        except ValueError:
            return False
        return hmac.compare_digest(candidate.hex(), digest)
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Is ``stored`` weaker than today's parameters (PBKDF2, or older Argon2 costs)?"""
    return stored.startswith(_LEGACY) or _HASHER.check_needs_rehash(stored)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the station is unknown, so that a refusal costs the same time
    (made on first use: hashing at import would slow every process's start)."""
    return hash_password(secrets.token_hex(20))


@dataclass(frozen=True)
class PasswordMatch:
    """Which of a station's stored keys a password matched."""

    current: bool = False
    previous: bool = False

    def __bool__(self) -> bool:
        return self.current or self.previous


class PasswordChecker:
    """Password checks off the event loop, at most ``concurrency`` at a time, remembering
    the checks that succeeded.

    A check costs tens of milliseconds of CPU and 19 MiB by design; the bound keeps a flood
    of guesses from taking the process's CPU and memory. A success is remembered as an HMAC
    (per-process random key) of the stored hash and the password, so a reconnect storm of
    known chargers costs no hashing, and a changed password changes the stored hash: a
    remembered success never outlives it. Failures are never remembered.
    """

    def __init__(self, *, concurrency: int = 2, size: int = 100_000) -> None:
        self._key = os.urandom(32)
        self._size = size
        self._succeeded: OrderedDict[bytes, None] = OrderedDict()
        self._slots = asyncio.Semaphore(max(1, concurrency))

    def _token(self, password: str, stored: str) -> bytes:
        return hmac.new(self._key, stored.encode() + b"\0" + password.encode(),
                        hashlib.sha256).digest()

    def remembered(self, password: str, stored: str) -> bool:
        """A success already seen (no hashing)."""
        token = self._token(password, stored)
        if token in self._succeeded:
            self._succeeded.move_to_end(token)
            return True
        return False

    async def check(self, password: str, stored: str) -> bool:
        if self.remembered(password, stored):
            return True
        async with self._slots:
            ok = await asyncio.to_thread(check_password, password, stored)
        if ok:
            self._succeeded[self._token(password, stored)] = None
            if len(self._succeeded) > self._size:
                self._succeeded.popitem(last=False)
        return ok

    async def waste(self, password: str) -> None:
        """Spend what a failed check costs (an unknown station must not answer faster)."""
        async with self._slots:
            await asyncio.to_thread(check_password, password, _dummy_hash())

    async def match(self, password: str, document: dict[str, Any], now: datetime
                    ) -> PasswordMatch:
        """Match ``password`` against a station's current key, then against the previous
        one while its grace lasts (A01)."""
        current = document.get("password_hash")
        if current and await self.check(password, current):
            return PasswordMatch(current=True)
        previous, until = document.get("previous_password_hash"), document.get(
            "previous_valid_until")
        if previous and until is not None and _aware(until) > now and await self.check(
                password, previous):
            return PasswordMatch(previous=True)
        return PasswordMatch()

    def __len__(self) -> int:
        return len(self._succeeded)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def add_station(db: AsyncDatabase[dict[str, Any]], station: str, *, registration: str,
                      password: str | None, now: datetime, security_profile: int | None = None,
                      certificate_cn: str | None = None) -> None:
    """Register ``station`` (or update it). The profile defaults to 1 with a password and 0
    without; a new password replaces any earlier one (and any key in its grace period).
    An identity the gateway would refuse raises :class:`station_ids.InvalidStationId`; it
    is stored in NFC, as the gateway looks it up."""
    station = station_ids.check(station)
    await check_certificate_identity(db, station, certificate_cn)
    password_hash = hash_password(password) if password is not None else None
    await db[COLLECTION].update_one(
        {"_id": station},
        station_update(registration=registration, password_hash=password_hash, now=now,
                       security_profile=security_profile, certificate_cn=certificate_cn),
        upsert=True,
    )


async def register_stations(db: AsyncDatabase[dict[str, Any]], ids: list[str], *,
                            registration: str, password: str | None,
                            security_profile: int | None = None,
                            certificate_cn: str | None = None,
                            now: datetime | None = None) -> dict[str, str]:
    """Add or update stations (the CLI's ``stations add``, the HTTP API); the keys
    generated for profile 1 and 2 stations that had no password (by station: the only time
    they are seen in clear)."""
    now = now or datetime.now(UTC)
    generated: dict[str, str] = {}
    for station in ids:
        key = password
        if key is None and security_profile in (1, 2):
            existing = await db[COLLECTION].find_one({"_id": station},
                                                     projection={"password_hash": 1})
            if not (existing or {}).get("password_hash"):
                key = generated[station] = generate_key()
        await add_station(db, station, registration=registration, password=key, now=now,
                          security_profile=security_profile, certificate_cn=certificate_cn)
    return generated


def station_update(*, registration: str, password_hash: str | None, now: datetime,
                   security_profile: int | None = None, certificate_cn: str | None = None
                   ) -> dict[str, Any]:
    """The upsert that registers a station or updates it (:func:`add_station`, and the bulk
    import): the profile defaults to 1 with a password and 0 without; a new password hash
    replaces any earlier one and any key in its grace period."""
    profile = security_profile if security_profile is not None else (1 if password_hash else 0)
    update: dict[str, Any] = {"registration": registration, "security_profile": profile}
    unset: dict[str, Any] = {"next_profile": ""}
    if password_hash is not None:
        update["password_hash"] = password_hash
        unset.update(previous_password_hash="", previous_valid_until="")
    if certificate_cn is not None:
        update["certificate_cn"] = certificate_cn
    return {"$set": update, "$unset": unset, "$setOnInsert": {"created_at": now}}


class IdentityTaken(ValueError):
    """Another station already answers to this certificate identity (A00.FR.427)."""


async def check_certificate_identity(db: AsyncDatabase[dict[str, Any]], station: str,
                                      certificate_cn: str | None) -> None:
    """A certificate's CN must identify one station: refuse a CN that is another station's
    id or CN, and an id that is another station's CN."""
    identity = certificate_cn or station
    clash = await db[COLLECTION].find_one(
        {"_id": {"$ne": station},
         "$or": [{"certificate_cn": identity}, {"_id": identity, "certificate_cn": None},
                 {"certificate_cn": station}]},
        projection={"_id": 1})
    if clash is not None:
        raise IdentityTaken(f"station {clash['_id']!r} already answers to certificate "
                            f"identity {identity!r}: one certificate per charger (A00.FR.427)")


async def rotate_password(db: AsyncDatabase[dict[str, Any]], station: str, new_hash: str,
                          *, grace_until: datetime) -> bool:
    """The station accepted a new AuthorizationKey (A01.FR.03): the new key's hash becomes
    current; the old one stays valid until ``grace_until`` or the first connection with the
    new key. Idempotent: a redelivered answer finds the new hash current and changes
    nothing. False if the station is unknown."""
    document = await db[COLLECTION].find_one(
        {"_id": station}, projection={"password_hash": 1, "security_profile": 1})
    if document is None:
        return False
    if document.get("password_hash") == new_hash:
        return True
    # A station of an earlier release has no stored profile: keep the one it has now (a
    # password does not raise it; ChangeConfiguration SecurityProfile does).
    update: dict[str, Any] = {"password_hash": new_hash,
                              "security_profile": security_profile(document)}
    unset: dict[str, Any] = {}
    if document.get("password_hash"):
        update.update(previous_password_hash=document["password_hash"],
                      previous_valid_until=grace_until)
    else:
        unset.update(previous_password_hash="", previous_valid_until="")
    change: dict[str, Any] = {"$set": update}
    if unset:
        change["$unset"] = unset
    await db[COLLECTION].update_one({"_id": station, "password_hash": document.get(
        "password_hash")}, change)
    return True


async def forget_previous_password(db: AsyncDatabase[dict[str, Any]], station: str) -> None:
    """The station connected with its new key: the old one is no longer accepted."""
    await db[COLLECTION].update_one(
        {"_id": station, "previous_password_hash": {"$exists": True}},
        {"$unset": {"previous_password_hash": "", "previous_valid_until": ""}})


async def upgrade_password_hash(db: AsyncDatabase[dict[str, Any]], station: str, old: str,
                                new: str) -> None:
    """Replace a weaker hash of the same password (only if it is still the current one)."""
    await db[COLLECTION].update_one({"_id": station, "password_hash": old},
                                    {"$set": {"password_hash": new}})


async def schedule_profile(db: AsyncDatabase[dict[str, Any]], station: str, profile: int
                           ) -> None:
    """The station accepted ChangeConfiguration SecurityProfile (TC_083): the new profile is
    required from its next connection on (see :func:`apply_scheduled_profile`)."""
    await db[COLLECTION].update_one(
        {"_id": station, "$or": [{"security_profile": {"$lt": profile}},
                                 {"security_profile": None}]},
        {"$set": {"next_profile": profile}})


async def apply_scheduled_profile(db: AsyncDatabase[dict[str, Any]], station: str,
                                  profile: int) -> None:
    """A connection met the scheduled profile: it is the station's profile from now on (a
    profile is never lowered this way)."""
    await db[COLLECTION].update_one(
        {"_id": station, "next_profile": profile},
        {"$set": {"security_profile": profile}, "$unset": {"next_profile": ""}})
