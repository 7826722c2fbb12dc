"""Files GridLink exchanges with chargers: what the commands service and the CLI share.

The commands service runs a small HTTP file server (``commands/file_server.py``) where
chargers upload diagnostics (GetDiagnostics) and download firmware images (UpdateFirmware).
Everything lives in MongoDB, so any commands replica serves any file:

- GridFS bucket ``diagnostics``: one file per upload, ``metadata`` = station, command_id,
  filename, size, uploaded_at, content_type.
- GridFS bucket ``firmware``: images served at ``/firmware/{name}``; names are unique.
- ``upload_tokens``: one per upload location GridLink hands out, ``_id`` = the token
  (``{_id, station, command_id, created_at, expires_at, uploads}``). An upload is accepted
  only for a known, unexpired token of that station: the endpoint is no open file drop.
- ``firmware_jobs`` / ``diagnostics_jobs``: one per accepted UpdateFirmware / GetDiagnostics
  command, ``_id`` = the command id, with the status the charger's notifications report.
- ``firmware_status`` / ``diagnostics_status``: the latest notification per station.

URLs (``{base}`` = ``GRIDLINK_FILES_PUBLIC_URL``, default ``http://HOST:FILES_PORT``)::

    {base}/diagnostics/{station}/{token}[/{filename}]   PUT or POST (raw body or multipart)
    {base}/firmware/{name}                              GET, HEAD (Range supported)
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.ocpp16 import iso, utcnow
from services.settings import Settings
from services.store import IndexSpec

Db = AsyncDatabase[dict[str, Any]]

DIAGNOSTICS_BUCKET = "diagnostics"
FIRMWARE_BUCKET = "firmware"
UPLOAD_TOKENS = "upload_tokens"
FIRMWARE_JOBS = "firmware_jobs"
DIAGNOSTICS_JOBS = "diagnostics_jobs"
FIRMWARE_STATUS = "firmware_status"
DIAGNOSTICS_STATUS = "diagnostics_status"

#: How long an upload location stays valid (plus the retries the request allows).
UPLOAD_TOKEN_TTL = timedelta(days=1)
#: Uploads accepted per token: a charger may upload again when it missed our answer.
MAX_UPLOADS_PER_TOKEN = 5
#: SupportedFileTransferProtocols (OCPP 1.6 errata §9.5.1), as URL schemes.
TRANSFER_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_FIRMWARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
_UPLOAD_PATH = re.compile(r"(?:^|/)diagnostics/(?P<station>[^/]+)/(?P<token>[^/]+)/?$")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")

INDEXES: IndexSpec = {
    f"{DIAGNOSTICS_BUCKET}.files": [
        IndexModel([("metadata.station", ASCENDING), ("uploadDate", DESCENDING)]),
        IndexModel([("metadata.command_id", ASCENDING)]),
    ],
    UPLOAD_TOKENS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    FIRMWARE_JOBS: [IndexModel([("station", ASCENDING), ("since", DESCENDING)])],
    DIAGNOSTICS_JOBS: [IndexModel([("station", ASCENDING), ("since", DESCENDING)])],
}


# --- URLs ---------------------------------------------------------------------------------


def public_base_url(settings: Settings) -> str:
    """Where chargers reach the file server: GRIDLINK_FILES_PUBLIC_URL or http://HOST:PORT."""
    if settings.files_public_url:
        return settings.files_public_url.rstrip("/")
    host = settings.files_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.files_port}"


def new_token() -> str:
    """A fresh upload token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def diagnostics_location(base: str, station: str, token: str) -> str:
    """The GetDiagnostics location for one upload."""
    return f"{base.rstrip('/')}/diagnostics/{quote(station, safe='')}/{token}"


def firmware_url(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/firmware/{quote(name, safe='')}"


@dataclass(frozen=True)
class UploadLocation:
    """The station and token of a location that points at GridLink's upload endpoint."""

    station: str
    token: str


def parse_upload_location(location: str) -> UploadLocation | None:
    """The upload slot a location names, or None when it is not GridLink's upload endpoint.

    The path decides, not the host: chargers may reach GridLink under several names, and
    the service need not know the one the requester used. A path that ends in
    ``/diagnostics/{station}/{token}`` with a token of GridLink's form is GridLink's.
    """
    try:
        path = urlsplit(location).path
    except ValueError:
        return None
    match = _UPLOAD_PATH.search(path)
    if match is None or not _TOKEN.match(match["token"]):
        return None
    return UploadLocation(unquote(match["station"]), match["token"])


def firmware_name_in(location: str, base: str) -> str | None:
    """The image name when ``location`` is a firmware URL of this file server, else None."""
    prefix = f"{base.rstrip('/')}/firmware/"
    if not location.startswith(prefix):
        return None
    name = unquote(location[len(prefix):])
    return name if "/" not in name else None


def check_firmware_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a valid image name (used as it is in URLs)."""
    if not _FIRMWARE_NAME.match(name):
        raise ValueError(
            f"invalid firmware name {name!r}: 1-200 characters A-Z a-z 0-9 . _ + -, "
            "starting with a letter or digit")


def token_is_well_formed(token: str) -> bool:
    return bool(_TOKEN.match(token))


def safe_filename(name: str | None) -> str | None:
    """A file name as the charger gave it, without directories or control characters."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    return name[:255] or None


# --- upload tokens ------------------------------------------------------------------------


async def register_upload_token(db: Db, token: str, station: str, command_id: str,
                                expires_at: datetime) -> bool:
    """Bind ``token`` to one command of ``station``; False if another command holds it."""
    document = await db[UPLOAD_TOKENS].find_one_and_update(
        {"_id": token},
        {"$setOnInsert": {"station": station, "command_id": command_id,
                          "created_at": utcnow(), "expires_at": expires_at, "uploads": 0}},
        upsert=True, return_document=ReturnDocument.AFTER,
    )
    return bool(document["station"] == station and document["command_id"] == command_id)


async def upload_token(db: Db, token: str) -> dict[str, Any] | None:
    return await db[UPLOAD_TOKENS].find_one({"_id": token})


def token_refusal(document: dict[str, Any] | None, station: str, now: datetime
                  ) -> tuple[int, str] | None:
    """Why an upload with this token is refused, as (HTTP status, reason); None: accept."""
    if document is None or document["station"] != station:
        return 404, "unknown upload location"
    if document["expires_at"] <= now:
        return 403, "upload location expired"
    if document.get("uploads", 0) >= MAX_UPLOADS_PER_TOKEN:
        return 403, "too many uploads to this location"
    return None


async def count_upload(db: Db, token: str) -> None:
    await db[UPLOAD_TOKENS].update_one({"_id": token}, {"$inc": {"uploads": 1}})


# --- diagnostics files --------------------------------------------------------------------


def diagnostics_bucket(db: Db) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(db, bucket_name=DIAGNOSTICS_BUCKET)


def firmware_bucket(db: Db) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(db, bucket_name=FIRMWARE_BUCKET)


async def link_diagnostics_file(db: Db, command_id: str, file: dict[str, Any]) -> None:
    """Point the diagnostics job of ``command_id`` (if it exists yet) at an uploaded file.

    ``file`` is the GridFS files document. The job keeps the latest upload in ``file_id``
    and every upload in ``files``; a file that arrives before the job exists is linked
    when the job is created (:func:`latest_upload`).
    """
    jobs = db[DIAGNOSTICS_JOBS]
    await jobs.update_one({"_id": command_id}, {"$addToSet": {"files": file["_id"]}})
    await jobs.update_one(  # an older upload finishing late does not replace a newer one
        {"_id": command_id, "$or": [{"uploaded_at": {"$exists": False}},
                                    {"uploaded_at": {"$lte": file["uploadDate"]}}]},
        {"$set": {"file_id": file["_id"], "uploaded_file_name": file["filename"],
                  "uploaded_size": file["length"], "uploaded_at": file["uploadDate"]}},
    )


async def latest_upload(db: Db, command_id: str) -> dict[str, Any] | None:
    """The newest file uploaded for a command."""
    return await db[f"{DIAGNOSTICS_BUCKET}.files"].find_one(
        {"metadata.command_id": command_id}, sort=[("uploadDate", DESCENDING)])


async def list_diagnostics(db: Db, station: str | None, limit: int = 100
                           ) -> list[dict[str, Any]]:
    """Uploaded diagnostics files, newest first, as CLI rows."""
    query = {"metadata.station": station} if station else {}
    rows = []
    async for doc in db[f"{DIAGNOSTICS_BUCKET}.files"].find(
            query, sort=[("uploadDate", DESCENDING)], limit=limit):
        metadata = doc.get("metadata") or {}
        rows.append({"id": str(doc["_id"]), "station": metadata.get("station"),
                     "fileName": doc["filename"], "size": doc["length"],
                     "uploaded": iso(doc["uploadDate"]),
                     "commandId": metadata.get("command_id")})
    return rows


def parse_file_id(text: str) -> ObjectId:
    """A diagnostics file id as printed by ``gridlink diagnostics list``; ValueError if not."""
    if not ObjectId.is_valid(text):
        raise ValueError(f"not a file id: {text!r}")
    return ObjectId(text)


async def diagnostics_file(db: Db, file_id: ObjectId) -> dict[str, Any] | None:
    return await db[f"{DIAGNOSTICS_BUCKET}.files"].find_one({"_id": file_id})


async def read_diagnostics(db: Db, file_id: ObjectId) -> AsyncIterator[bytes]:
    """The bytes of one diagnostics file, chunk by chunk."""
    stream = await diagnostics_bucket(db).open_download_stream(file_id)
    while chunk := await stream.readchunk():
        yield chunk


# --- firmware images ----------------------------------------------------------------------


async def firmware_exists(db: Db, name: str) -> bool:
    found = await db[f"{FIRMWARE_BUCKET}.files"].find_one({"filename": name}, {"_id": 1})
    return found is not None


async def add_firmware(db: Db, name: str, source: IO[bytes]) -> tuple[ObjectId, int]:
    """Store an image under a new name; ValueError if the name is taken. (id, size)."""
    check_firmware_name(name)
    if await firmware_exists(db, name):
        raise ValueError(f"firmware {name!r} exists already: choose another --name")
    bucket = firmware_bucket(db)
    stream = bucket.open_upload_stream(name, metadata={"added_at": utcnow()})
    try:
        await stream.write(source)
    except BaseException:
        await stream.abort()
        raise
    await stream.close()
    return stream._id, stream.length


async def list_firmware(db: Db, base: str) -> list[dict[str, Any]]:
    rows = []
    async for doc in db[f"{FIRMWARE_BUCKET}.files"].find({}, sort=[("filename", ASCENDING)]):
        rows.append({"name": doc["filename"], "size": doc["length"],
                     "added": iso(doc["uploadDate"]), "url": firmware_url(base, doc["filename"])})
    return rows


# --- jobs ---------------------------------------------------------------------------------


async def list_jobs(db: Db, collection: str, station: str | None, limit: int = 50
                    ) -> list[dict[str, Any]]:
    """Firmware or diagnostics jobs, newest first, as CLI rows."""
    query = {"station": station} if station else {}
    rows = []
    async for doc in db[collection].find(query, sort=[("since", DESCENDING)], limit=limit):
        row: dict[str, Any] = {"commandId": doc["_id"], "station": doc["station"],
                               "status": doc["status"]}
        if collection == FIRMWARE_JOBS:
            row["firmware"] = doc.get("firmware") or doc.get("location")
            row["retrieveDate"] = iso(doc["retrieve_date"])
        else:
            row["fileName"] = doc.get("file_name")
            row["fileId"] = str(doc["file_id"]) if doc.get("file_id") else None
        row["updated"] = iso(doc["updated_at"])
        row["history"] = [h["status"] for h in doc.get("history", []) if h.get("applied", True)]
        rows.append(row)
    return rows
