"""Download tokens (collection ``download_tokens``): firmware is served only through a URL
``{base}/firmware/{token}/{name}`` carrying one, ``_id`` = the token::

    {_id, firmware: name, station, command_id, created_at, expires_at, downloads}

One token per UpdateFirmware or SignedUpdateFirmware command (``gridlink firmware update``
issues it for its command; a request naming the tokenless ``{base}/firmware/{name}`` gets
one issued and its location rewritten, :mod:`commands.files.firmware_locations`). It is
valid from its creation until the retrieve date plus GRIDLINK_FILES_DOWNLOAD_WINDOW_S plus
the retries the request allows (:func:`commands.files.rules.download_expiry`), for any
number of downloads (a charger resumes with Range, or retries). Expired tokens stay a week,
so the server can say "expired" (403) rather than "unknown" (404), then MongoDB removes
them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.file_transfers import DOWNLOAD_TOKENS, issue_download_token
from services.store import IndexSpec

COLLECTION = DOWNLOAD_TOKENS
KEPT_AFTER_EXPIRY = timedelta(days=7)

INDEXES: IndexSpec = {
    COLLECTION: [IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl",
                            expireAfterSeconds=int(KEPT_AFTER_EXPIRY.total_seconds()))],
}

Db = AsyncDatabase[dict[str, Any]]

#: A fresh token for downloading an image (kept in the kernel, so the HTTP API issues it too).
issue = issue_download_token


async def get(db: Db, token: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": token})


async def bind(db: Db, token: str, station: str, command_id: str) -> dict[str, Any] | None:
    """Bind a token to one command (idempotent); None if another command holds it."""
    return await db[COLLECTION].find_one_and_update(
        {"_id": token, "command_id": {"$in": [None, command_id]}},
        {"$set": {"command_id": command_id, "station": station}},
        return_document=ReturnDocument.AFTER)


async def count_download(db: Db, token: str) -> None:
    await db[COLLECTION].update_one({"_id": token}, {"$inc": {"downloads": 1}})
