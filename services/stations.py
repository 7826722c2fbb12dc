"""The station registry (collection ``stations``), shared by authz and the CLI.

``{_id: chargePointId, registration: Accepted|Pending|Rejected, password_hash, vendor,
model, serial, firmware, last_boot, last_seen, created_at}``.
Passwords (security profiles 1 and 2) are stored only as salted PBKDF2 hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections import OrderedDict
from datetime import datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services.store import IndexSpec

COLLECTION = "stations"
PROFILES = (0, 1, 2, 3)  # security profiles (Security Whitepaper ed. 2, §2)
INDEXES: IndexSpec = {COLLECTION: [IndexModel("last_seen")]}
_ITERATIONS = 100_000


def certificate_identity(document: dict[str, Any] | None, station: str) -> str:
    """The common name (CN) a station's client certificate must carry (A00.FR.405): the one
    set for it (``certificate_cn``), else its charge point identity."""
    return str((document or {}).get("certificate_cn") or station)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return f"pbkdf2_sha256${_ITERATIONS}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                    int(iterations))
    return hmac.compare_digest(candidate.hex(), digest)


class PasswordChecker:
    """``check_password`` off the event loop, remembering the checks that succeeded.

    PBKDF2 costs tens of milliseconds of CPU by design; a reconnect storm of
    password-protected chargers would otherwise spend minutes on it. A success is
    remembered as an HMAC (per-process random key) of the stored hash and the password: a
    changed password changes the stored hash, so a remembered success never outlives it.
    Failures are never remembered (each costs the full PBKDF2, which slows guessing).
    """

    def __init__(self, size: int = 100_000) -> None:
        self._key = os.urandom(32)
        self._size = size
        self._succeeded: OrderedDict[bytes, None] = OrderedDict()

    async def check(self, password: str, stored: str) -> bool:
        token = hmac.new(self._key, stored.encode() + b"\0" + password.encode(),
                         hashlib.sha256).digest()
        if token in self._succeeded:
            self._succeeded.move_to_end(token)
            return True
        ok = await asyncio.to_thread(check_password, password, stored)
        if ok:
            self._succeeded[token] = None
            if len(self._succeeded) > self._size:
                self._succeeded.popitem(last=False)
        return ok

    def __len__(self) -> int:
        return len(self._succeeded)


async def add_station(db: AsyncDatabase[dict[str, Any]], station: str, *, registration: str,
                      password: str | None, now: datetime) -> None:
    update: dict[str, Any] = {"registration": registration}
    if password is not None:
        update["password_hash"] = hash_password(password)
    await db[COLLECTION].update_one(
        {"_id": station},
        {"$set": update, "$setOnInsert": {"created_at": now}},
        upsert=True,
    )
