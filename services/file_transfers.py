"""What GridLink's file transfers need in every process that starts one (the commands
service, the CLI, the HTTP API): the file server's URLs, tokens, image names, the firmware
image store, download tokens and the requestIds of GetLog and SignedUpdateFirmware.

The commands service's :mod:`commands.files` (the file server, the checks of requests,
jobs) re-exports these under their old names (``rules.firmware_url``,
``download_tokens.issue``, ``request_ids.fresh``, ``repository.add_firmware`` ...), so
``gridlink firmware|diagnostics|logs`` and ``/api/v1/.../firmware-update`` build the same
locations the same way. Collections and buckets: see :mod:`commands.files.repository`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import IO, Any
from urllib.parse import quote, urlsplit

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from services import counters
from services.clock import iso, utcnow
from services.command_records import FIRMWARE_BUCKET
from services.configuration_snapshots import read as read_snapshot
from services.settings import Settings

Db = AsyncDatabase[dict[str, Any]]

FTP_SCHEMES = ("ftp", "ftps")
PROTOCOLS = ("http", "ftp", "ftps")
FTP_UPLOAD_USER = "diagnostics"  # the FTP user of upload tokens (GetDiagnostics, GetLog)
FTP_DOWNLOAD_USER = "firmware"  # the FTP user of download tokens
MAX_RETRY_WINDOW = timedelta(days=30)
DOWNLOAD_TOKENS = "download_tokens"
STATION_PROTOCOLS = "file_transfer_protocols"  # the operator's default per station
SUPPORTED_PROTOCOLS_KEY = "SupportedFileTransferProtocols"
REQUEST_ID_COUNTER = "file_request_id"

_FIRMWARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


# --- URLs and tokens ----------------------------------------------------------------------


def public_base_url(settings: Settings, protocol: str = "http") -> str:
    """Where chargers reach the file server with ``protocol`` (``http``: the HTTP file server,
    GRIDLINK_FILES_PUBLIC_URL or http(s)://HOST:PORT — https when GridLink's listeners have
    a TLS certificate; ``ftp``/``ftps``: ``{protocol}://GRIDLINK_FTP_PUBLIC_HOST:PORT``).
    ValueError for an FTP protocol the FTP listener does not accept."""
    if protocol in FTP_SCHEMES:
        if protocol not in settings.ftp_schemes:
            served = ", ".join(settings.ftp_schemes) or "none: GRIDLINK_FTP_PORT is 0"
            raise ValueError(f"the file server does not serve {protocol} (FTP: {served}; "
                             "GRIDLINK_FTP_PORT, GRIDLINK_FTP_PROTOCOLS)")
        host = _url_host(settings.ftp_public_host or settings.files_host)
        return f"{protocol}://{host}:{settings.ftp_public_port or settings.ftp_port}"
    if settings.files_public_url:
        return settings.files_public_url.rstrip("/")
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{_url_host(settings.files_host)}:{settings.files_port}"



def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host



def ftp_parts(base: str) -> tuple[str, str] | None:
    """(scheme, host:port) of an ftp:// or ftps:// base; None for another scheme."""
    scheme, _, rest = base.partition("://")
    return (scheme.lower(), rest.rstrip("/")) if scheme.lower() in FTP_SCHEMES else None



def new_token() -> str:
    """A fresh upload or download token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)



def diagnostics_location(base: str, station: str, token: str) -> str:
    """The GetDiagnostics (or GetLog) location for one upload; on an FTP base the token is
    the password and the path a directory (chargers store ``{path}{fileName}``)."""
    ftp = ftp_parts(base)
    if ftp is not None:
        return (f"{ftp[0]}://{FTP_UPLOAD_USER}:{token}@{ftp[1]}/diagnostics/"
                f"{quote(station, safe='')}/")
    return f"{base.rstrip('/')}/diagnostics/{quote(station, safe='')}/{token}"



def firmware_url(base: str, token: str, name: str) -> str:
    """The download URL of an image through one download token (on an FTP base, the
    token is the password)."""
    ftp = ftp_parts(base)
    if ftp is not None:
        return f"{ftp[0]}://{FTP_DOWNLOAD_USER}:{token}@{ftp[1]}/firmware/{quote(name, safe='')}"
    return f"{base.rstrip('/')}/firmware/{token}/{quote(name, safe='')}"



def check_firmware_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a valid image name (used as it is in URLs)."""
    if not _FIRMWARE_NAME.match(name):
        raise ValueError(
            f"invalid firmware name {name!r}: 1-200 characters A-Z a-z 0-9 . _ + -, "
            "starting with a letter or digit")



def transfer_protocol(chosen: str | None, station_default: str | None,
                      supported: str | None, offered: tuple[str, ...]) -> str:
    """The protocol a station's upload or download location uses.

    ``chosen`` (``--protocol``) first, then the operator's default for the station, then the
    first of ``offered`` (what GridLink serves, most secure first: ``https``/``http`` — the
    HTTP file server — then ``ftps``, ``ftp``) that the charger lists in
    SupportedFileTransferProtocols (``supported``, its configuration snapshot), else
    ``http``. The answer is one of :data:`PROTOCOLS` (``http`` meaning the HTTP file
    server, whichever its scheme).
    """
    if chosen:
        return chosen
    if station_default:
        return station_default
    if supported:
        listed = {name.strip().lower() for name in supported.split(",")}
        for protocol in offered:
            if protocol in listed:
                return "http" if protocol in ("http", "https") else protocol
    return "http"



def offered_protocols(settings: Settings) -> tuple[str, ...]:
    """What GridLink's file server serves, most secure first (for :func:`transfer_protocol`)."""
    return (urlsplit(public_base_url(settings)).scheme,
            *sorted(settings.ftp_schemes, reverse=True))



def parse_file_id(text: str) -> ObjectId:
    """A diagnostics file id as printed by ``gridlink diagnostics list``; ValueError if not."""
    if not ObjectId.is_valid(text):
        raise ValueError(f"not a file id: {text!r}")
    return ObjectId(text)



def retry_window(payload: dict[str, Any]) -> timedelta:
    window = payload.get("retries", 0) * payload.get("retryInterval", 0)
    return timedelta(seconds=min(window, MAX_RETRY_WINDOW.total_seconds()))



def download_expiry(payload: dict[str, Any], retrieve: datetime, now: datetime,
                    window: timedelta) -> datetime:
    """How long a download URL stays valid: from the retrieve date (now, if that is past) for
    ``window`` (GRIDLINK_FILES_DOWNLOAD_WINDOW_S), plus the retries the request allows.
    ``payload`` holds ``retries`` and ``retryInterval`` (UpdateFirmware's or
    SignedUpdateFirmware's)."""
    return max(retrieve, now) + window + retry_window(payload)


# --- what a transfer is given -------------------------------------------------------------


def signed_update_firmware(*, location: str, retrieve: datetime, install: datetime | None,
                           metadata: dict[str, Any], request_id: int | None,
                           retries: dict[str, int]) -> dict[str, Any]:
    """The SignedUpdateFirmware payload for a stored, signed image (its ``metadata``)."""
    firmware = {"location": location, "retrieveDateTime": iso(retrieve),
                "signingCertificate": metadata["signing_certificate"],
                "signature": metadata["signature"]}
    if install is not None:
        firmware["installDateTime"] = iso(install)
    return {"requestId": request_id, "firmware": firmware, **retries}


async def station_protocol_facts(db: Db, station: str) -> tuple[str | None, str | None]:
    """(the operator's default protocol for the station, the charger's
    SupportedFileTransferProtocols from its configuration snapshot)."""
    document = await db[STATION_PROTOCOLS].find_one({"_id": station})
    snapshot = await read_snapshot(db, station)
    return (str(document["protocol"]) if document else None,
            snapshot.value(SUPPORTED_PROTOCOLS_KEY))


async def file_server_base(db: Db, settings: Settings, station: str, chosen: str | None
                           ) -> str:
    """The file server's base URL for this station's transfer: ``chosen``, else the
    station's default, else the best of the charger's protocols GridLink serves, else http
    (:func:`transfer_protocol`). ValueError for an FTP protocol GridLink does not serve."""
    default, supported = await station_protocol_facts(db, station)
    protocol = transfer_protocol(chosen, default, supported, offered_protocols(settings))
    return public_base_url(settings, protocol)


async def issue_download_token(db: Db, name: str, *, station: str | None,
                               command_id: str | None, expires_at: datetime) -> str:
    """A fresh token for downloading image ``name`` (:mod:`commands.files.download_tokens`)."""
    token = new_token()
    await db[DOWNLOAD_TOKENS].insert_one({
        "_id": token, "firmware": name, "station": station, "command_id": command_id,
        "created_at": utcnow(), "expires_at": expires_at, "downloads": 0})
    return token


async def fresh_request_id(db: Db) -> int:
    """A requestId no other GetLog or SignedUpdateFirmware of GridLink's carries (the shared
    counter ``file_request_id``, so replicas never hand out the same)."""
    return await counters.advance(db, REQUEST_ID_COUNTER)


# --- firmware images (GridFS bucket ``firmware``) ------------------------------------------


def firmware_bucket(db: Db) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(db, bucket_name=FIRMWARE_BUCKET)


async def firmware_image(db: Db, name: str) -> dict[str, Any] | None:
    """The GridFS files document of an image (its ``metadata`` holds the signature)."""
    return await db[f"{FIRMWARE_BUCKET}.files"].find_one({"filename": name})


async def add_firmware(db: Db, name: str, source: IO[bytes] | bytes,
                       metadata: dict[str, Any] | None = None) -> tuple[ObjectId, int]:
    """Store an image under a new name, with ``metadata`` (sha256, signature, ...);
    ValueError if the name is taken. (id, size)."""
    check_firmware_name(name)
    if await firmware_image(db, name) is not None:
        raise ValueError(f"firmware {name!r} exists already: choose another --name")
    stream = firmware_bucket(db).open_upload_stream(
        name, metadata={"added_at": utcnow(), **(metadata or {})})
    try:
        await stream.write(source)
    except BaseException:
        await stream.abort()
        raise
    await stream.close()
    return stream._id, stream.length


async def store_firmware_stream(db: Db, name: str, chunks: AsyncIterator[bytes],
                                metadata: dict[str, Any], max_bytes: int
                                ) -> tuple[ObjectId, int] | None:
    """Store an image arriving in ``chunks`` (an HTTP body) without holding it in memory;
    None (nothing kept) if it is longer than ``max_bytes``. The caller checks the name."""
    stream = firmware_bucket(db).open_upload_stream(
        name, metadata={"added_at": utcnow(), **metadata})
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                await stream.abort()
                return None
            await stream.write(chunk)
    except BaseException:
        await stream.abort()
        raise
    await stream.close()
    return stream._id, stream.length
