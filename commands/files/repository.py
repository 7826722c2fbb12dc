"""The files the commands service keeps in MongoDB, so any replica serves any file:

- GridFS bucket ``diagnostics``: one file per GetDiagnostics upload, ``metadata`` =
  station, command_id, filename, size, uploaded_at, content_type.
- GridFS bucket ``logs``: one file per GetLog upload, the same ``metadata`` plus
  ``log_type`` and ``request_id`` (security logs kept apart from diagnostics, so they can
  be given other access rules or retention).
- GridFS bucket ``firmware``: images, served through download tokens
  (:mod:`commands.files.download_tokens`); names are unique. ``metadata``: added_at,
  sha256, and for signed images signing_certificate (PEM), signature (base64) and
  signature_algorithm (:mod:`commands.files.signatures`).
- ``firmware_jobs`` / ``diagnostics_jobs`` / ``log_jobs`` / ``signed_firmware_jobs``: one per
  accepted UpdateFirmware / GetDiagnostics / GetLog / SignedUpdateFirmware command, ``_id``
  = the command id (the last two with the ``request_id``), with the status the charger's
  notifications report (:mod:`commands.files.jobs`).
- ``firmware_status`` / ``diagnostics_status`` / ``log_status`` / ``signed_firmware_status``:
  the latest notifications per station.

Upload and download tokens: :mod:`commands.files.upload_tokens`,
:mod:`commands.files.download_tokens`; URLs and names: :mod:`commands.files.rules`; the HTTP
side: :mod:`commands.files.http_server`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from commands.files.upload_tokens import DIAGNOSTICS, LOG
from services.command_records import (
    DIAGNOSTICS_BUCKET,
    DIAGNOSTICS_JOBS,
    FIRMWARE_BUCKET,
    FIRMWARE_JOBS,
    LOG_BUCKET,
    LOG_JOBS,
    SIGNED_FIRMWARE_JOBS,
)
from services.file_transfers import add_firmware as add_firmware
from services.file_transfers import firmware_bucket as firmware_bucket
from services.file_transfers import firmware_image as firmware_image
from services.ocpp16 import iso
from services.store import IndexSpec

Db = AsyncDatabase[dict[str, Any]]

FIRMWARE_STATUS = "firmware_status"
DIAGNOSTICS_STATUS = "diagnostics_status"
LOG_STATUS = "log_status"
SIGNED_FIRMWARE_STATUS = "signed_firmware_status"

#: Where the uploads of each kind of upload token go: (GridFS bucket, jobs collection).
UPLOADS = {DIAGNOSTICS: (DIAGNOSTICS_BUCKET, DIAGNOSTICS_JOBS), LOG: (LOG_BUCKET, LOG_JOBS)}

INDEXES: IndexSpec = {
    **{f"{bucket_name}.files": [
        IndexModel([("metadata.station", ASCENDING), ("uploadDate", DESCENDING)]),
        IndexModel([("metadata.command_id", ASCENDING)]),
    ] for bucket_name in (DIAGNOSTICS_BUCKET, LOG_BUCKET)},
    FIRMWARE_JOBS: [IndexModel([("station", ASCENDING), ("since", DESCENDING)])],
    DIAGNOSTICS_JOBS: [IndexModel([("station", ASCENDING), ("since", DESCENDING)])],
    **{collection: [IndexModel([("station", ASCENDING), ("since", DESCENDING)]),
                    IndexModel([("station", ASCENDING), ("request_id", ASCENDING)],
                               unique=True)]
       for collection in (LOG_JOBS, SIGNED_FIRMWARE_JOBS)},
}


# --- uploaded files -----------------------------------------------------------------------


def bucket(db: Db, name: str) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(db, bucket_name=name)


async def link_uploaded_file(db: Db, kind: str, command_id: str, file: dict[str, Any]
                             ) -> None:
    """Point the diagnostics or log job of ``command_id`` (if it exists yet) at an uploaded
    file (``kind``: the upload token's).

    ``file`` is the GridFS files document. The job keeps the latest upload in ``file_id``
    and every upload in ``files``; a file that arrives before the job exists is linked
    when the job is created (:func:`latest_upload`).
    """
    jobs = db[UPLOADS[kind][1]]
    await jobs.update_one({"_id": command_id}, {"$addToSet": {"files": file["_id"]}})
    await jobs.update_one(  # an older upload finishing late does not replace a newer one
        {"_id": command_id, "$or": [{"uploaded_at": {"$exists": False}},
                                    {"uploaded_at": {"$lte": file["uploadDate"]}}]},
        {"$set": {"file_id": file["_id"], "uploaded_file_name": file["filename"],
                  "uploaded_size": file["length"], "uploaded_at": file["uploadDate"]}},
    )


async def latest_upload(db: Db, kind: str, command_id: str) -> dict[str, Any] | None:
    """The newest file uploaded for a command (``kind``: diagnostics or log)."""
    return await db[f"{UPLOADS[kind][0]}.files"].find_one(
        {"metadata.command_id": command_id}, sort=[("uploadDate", DESCENDING)])


async def link_early_upload(db: Db, kind: str, command_id: str) -> None:
    """Link a file the charger uploaded before its answer was processed to the new job."""
    upload = await latest_upload(db, kind, command_id)
    if upload is not None:
        await link_uploaded_file(db, kind, command_id, upload)


async def list_uploads(db: Db, bucket_name: str, station: str | None, limit: int = 100
                       ) -> list[dict[str, Any]]:
    """Uploaded diagnostics or log files, newest first, as CLI rows."""
    query = {"metadata.station": station} if station else {}
    rows = []
    async for doc in db[f"{bucket_name}.files"].find(
            query, sort=[("uploadDate", DESCENDING)], limit=limit):
        metadata = doc.get("metadata") or {}
        row = {"id": str(doc["_id"]), "station": metadata.get("station"),
               "fileName": doc["filename"], "size": doc["length"],
               "uploaded": iso(doc["uploadDate"]), "commandId": metadata.get("command_id")}
        if bucket_name == LOG_BUCKET:
            row.update(logType=metadata.get("log_type"), requestId=metadata.get("request_id"))
        rows.append(row)
    return rows


async def uploaded_file(db: Db, bucket_name: str, file_id: ObjectId) -> dict[str, Any] | None:
    return await db[f"{bucket_name}.files"].find_one({"_id": file_id})


async def read_upload(db: Db, bucket_name: str, file_id: ObjectId) -> AsyncIterator[bytes]:
    """The bytes of one uploaded file, chunk by chunk."""
    stream = await bucket(db, bucket_name).open_download_stream(file_id)
    while chunk := await stream.readchunk():
        yield chunk


# --- firmware images ----------------------------------------------------------------------


async def firmware_exists(db: Db, name: str) -> bool:
    return await firmware_image(db, name) is not None


async def list_firmware(db: Db) -> list[dict[str, Any]]:
    """Stored images, by name, as CLI rows (no URLs: each update gets its own)."""
    rows = []
    async for doc in db[f"{FIRMWARE_BUCKET}.files"].find({}, sort=[("filename", ASCENDING)]):
        metadata = doc.get("metadata") or {}
        rows.append({"name": doc["filename"], "size": doc["length"],
                     "added": iso(doc["uploadDate"]), "sha256": metadata.get("sha256"),
                     "signed": metadata.get("signature_algorithm")})
    return rows


# --- jobs ---------------------------------------------------------------------------------


async def list_jobs(db: Db, collection: str, station: str | None, limit: int = 50
                    ) -> list[dict[str, Any]]:
    """Jobs of one collection, newest first, as CLI rows."""
    query = {"station": station} if station else {}
    rows = []
    async for doc in db[collection].find(query, sort=[("since", DESCENDING)], limit=limit):
        rows.append(_job_row(collection, doc))
    return rows


async def list_firmware_jobs(db: Db, station: str | None, limit: int = 50
                             ) -> list[dict[str, Any]]:
    """UpdateFirmware and SignedUpdateFirmware jobs together, newest first, as CLI rows."""
    query = {"station": station} if station else {}
    found = []
    for collection in (FIRMWARE_JOBS, SIGNED_FIRMWARE_JOBS):
        async for doc in db[collection].find(query, sort=[("since", DESCENDING)], limit=limit):
            found.append((doc["since"], _job_row(collection, doc)))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [row for _, row in found[:limit]]


def _job_row(collection: str, doc: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"commandId": doc["_id"], "station": doc["station"],
                           "status": doc["status"]}
    if collection in (FIRMWARE_JOBS, SIGNED_FIRMWARE_JOBS):
        row["action"] = ("SignedUpdateFirmware" if collection == SIGNED_FIRMWARE_JOBS
                         else "UpdateFirmware")
        row["requestId"] = doc.get("request_id")
        row["firmware"] = doc.get("firmware") or doc.get("location")
        row["retrieveDate"] = iso(doc["retrieve_date"])
    else:
        if collection == LOG_JOBS:
            row["logType"] = doc.get("log_type")
            row["requestId"] = doc.get("request_id")
        row["fileName"] = doc.get("file_name")
        row["fileId"] = str(doc["file_id"]) if doc.get("file_id") else None
    row["updated"] = iso(doc["updated_at"])
    # The job's path in the charger's order (its history is in the order reports came).
    path = [h for h in doc.get("history", []) if h.get("applied", True)]
    row["history"] = [h["status"] for h in sorted(path, key=lambda h: h["at"])]
    return row
