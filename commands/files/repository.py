"""The files the commands service keeps in MongoDB, so any replica serves any file:

- GridFS bucket ``diagnostics``: one file per upload, ``metadata`` = station, command_id,
  filename, size, uploaded_at, content_type.
- GridFS bucket ``firmware``: images served at ``/firmware/{name}``; names are unique.
- ``upload_tokens``: one per upload location GridLink hands out, ``_id`` = the token
  (``{_id, station, command_id, created_at, expires_at, uploads}``). An upload is accepted
  only for a known, unexpired token of that station: the endpoint is no open file drop.
- ``firmware_jobs`` / ``diagnostics_jobs``: one per accepted UpdateFirmware / GetDiagnostics
  command, ``_id`` = the command id, with the status the charger's notifications report
  (:mod:`commands.files.jobs`).
- ``firmware_status`` / ``diagnostics_status``: the latest notifications per station.

URLs, tokens and names are in :mod:`commands.files.rules`; the HTTP side is
:mod:`commands.files.http_server`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import IO, Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from commands.files.rules import check_firmware_name, firmware_url
from services.ocpp16 import iso, utcnow
from services.store import IndexSpec

Db = AsyncDatabase[dict[str, Any]]

DIAGNOSTICS_BUCKET = "diagnostics"
FIRMWARE_BUCKET = "firmware"
UPLOAD_TOKENS = "upload_tokens"
FIRMWARE_JOBS = "firmware_jobs"
DIAGNOSTICS_JOBS = "diagnostics_jobs"
FIRMWARE_STATUS = "firmware_status"
DIAGNOSTICS_STATUS = "diagnostics_status"

INDEXES: IndexSpec = {
    f"{DIAGNOSTICS_BUCKET}.files": [
        IndexModel([("metadata.station", ASCENDING), ("uploadDate", DESCENDING)]),
        IndexModel([("metadata.command_id", ASCENDING)]),
    ],
    UPLOAD_TOKENS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    FIRMWARE_JOBS: [IndexModel([("station", ASCENDING), ("since", DESCENDING)])],
    DIAGNOSTICS_JOBS: [IndexModel([("station", ASCENDING), ("since", DESCENDING)])],
}


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

