"""API keys (collection ``api_keys``): bearer tokens with scopes, stored hashed.

A key is ``glk_<key id>_<secret>``: 12 hex digits that name it (its ``_id``, shown in
``gridlink api-keys list`` and in the audit trail) and 32 random bytes (base64url). It is
shown once, when created; only the SHA-256 of the whole key is stored — the key is random
and long, so a fast hash is enough (a slow password hash such as Argon2 guards guessable
secrets, and would cost every request ~40 ms). Checks compare digests in constant time.

``{_id: key id, name, scopes: [read|commands|admin], sha256, created_at, revoked_at}``.
Scopes: ``read`` reads everything; ``commands`` also sends commands (and reads, to follow
them); ``admin`` implies both and is needed to change the registries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.clock import utcnow

COLLECTION = "api_keys"
SCOPES = ("read", "commands", "admin")
#: What each scope includes.
IMPLIED = {"read": {"read"}, "commands": {"read", "commands"},
           "admin": {"read", "commands", "admin"}}
PREFIX = "glk_"
_KEY = re.compile(r"^glk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

Db = AsyncDatabase[dict[str, Any]]


@dataclass(frozen=True)
class ApiKey:
    """A valid (not revoked) key: who is asking, allowed what."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return any(scope in IMPLIED[have] for have in self.scopes if have in IMPLIED)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, deduplicated in canonical order; ValueError naming an unknown one."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes are {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    return [scope for scope in SCOPES if scope in scopes]


async def create_key(db: Db, name: str, scopes: list[str], *, now: datetime | None = None
                     ) -> tuple[str, str]:
    """A new key: (key id, the key itself — shown once, never stored)."""
    wanted = check_scopes(scopes)
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    await db[COLLECTION].insert_one({"_id": key_id, "name": name, "scopes": wanted,
                                     "sha256": digest(key), "created_at": now or utcnow(),
                                     "revoked_at": None})
    return key_id, key


async def list_keys(db: Db) -> list[dict[str, Any]]:
    """Every key (never its hash), oldest first."""
    return await db[COLLECTION].find({}, {"sha256": 0}, sort=[("created_at", 1)]).to_list()


async def revoke(db: Db, key_id: str, *, now: datetime | None = None) -> bool:
    """Revoke a key; False when there is no such key (revoking twice keeps the first time)."""
    await db[COLLECTION].update_one({"_id": key_id, "revoked_at": None},
                                    {"$set": {"revoked_at": now or utcnow()}})
    return await db[COLLECTION].count_documents({"_id": key_id}) == 1


async def authenticate(db: Db, key: str) -> ApiKey | None:
    """The key's record if ``key`` is a valid, unrevoked key, else None."""
    found = _KEY.match(key)
    if found is None:
        return None
    document = await db[COLLECTION].find_one({"_id": found.group(1)})
    if document is None or not hmac.compare_digest(document.get("sha256", ""), digest(key)):
        return None
    if document.get("revoked_at") is not None:
        return None
    return ApiKey(document["_id"], document.get("name", ""), frozenset(document["scopes"]))


def key_id_of(key: str) -> str | None:
    """The key id a presented key claims (for the log of a refusal), if it has the form."""
    found = _KEY.match(key)
    return found.group(1) if found else None
