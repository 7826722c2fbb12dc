"""The station registry (collection ``stations``), shared by authz and the CLI.

``{_id: chargePointId, registration: Accepted|Pending|Rejected, password_hash, vendor,
model, serial, firmware, last_boot, last_seen, created_at}``.
Passwords (security profiles 1 and 2) are stored only as salted PBKDF2 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services.store import IndexSpec

COLLECTION = "stations"
INDEXES: IndexSpec = {COLLECTION: [IndexModel("last_seen")]}
_ITERATIONS = 100_000


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
