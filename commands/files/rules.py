"""Files GridLink exchanges with chargers, without I/O: URLs, upload tokens, image names, and
the checks UpdateFirmware and GetDiagnostics requests must pass before they are sent.

URLs (``{base}`` = ``GRIDLINK_FILES_PUBLIC_URL``, default ``http://HOST:FILES_PORT``)::

    {base}/diagnostics/{station}/{token}[/{filename}]   PUT or POST (raw body or multipart)
    {base}/firmware/{name}                              GET, HEAD (Range supported)
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from bson import ObjectId

from services.ocpp16 import parse_time
from services.settings import Settings

#: How long an upload location stays valid (plus the retries the request allows).
UPLOAD_TOKEN_TTL = timedelta(days=1)
#: Uploads accepted per token: a charger may upload again when it missed our answer.
MAX_UPLOADS_PER_TOKEN = 5
#: SupportedFileTransferProtocols (OCPP 1.6 errata §9.5.1), as URL schemes.
TRANSFER_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
MAX_RETRY_WINDOW = timedelta(days=30)

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_FIRMWARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
_UPLOAD_PATH = re.compile(r"(?:^|/)diagnostics/(?P<station>[^/]+)/(?P<token>[^/]+)/?$")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")


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


def parse_file_id(text: str) -> ObjectId:
    """A diagnostics file id as printed by ``gridlink diagnostics list``; ValueError if not."""
    if not ObjectId.is_valid(text):
        raise ValueError(f"not a file id: {text!r}")
    return ObjectId(text)


# --- request checks -----------------------------------------------------------------------


def location_problem(location: str) -> str | None:
    """Why a charger could not use this location, or None."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return "location: not a URL"
    if parts.scheme.lower() not in TRANSFER_SCHEMES:
        return (f"location: unsupported scheme {parts.scheme!r} "
                "(SupportedFileTransferProtocols: http, https, ftp, ftps)")
    if not parts.netloc:
        return "location: no host"
    return None


def retry_problem(payload: dict[str, Any]) -> str | None:
    for key in ("retries", "retryInterval"):
        if payload.get(key, 0) < 0:
            return f"{key} must not be negative"
    return None


def update_firmware_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a (schema-valid) UpdateFirmware payload, or None."""
    return location_problem(payload["location"]) or retry_problem(payload)


def get_diagnostics_problem(payload: dict[str, Any], station: str) -> str | None:
    """What is wrong with a (schema-valid) GetDiagnostics payload for ``station``, or None."""
    problem = location_problem(payload["location"]) or retry_problem(payload)
    if problem is not None:
        return problem
    if "startTime" in payload and "stopTime" in payload and \
            parse_time(payload["startTime"]) > parse_time(payload["stopTime"]):
        return "startTime is after stopTime"
    slot = parse_upload_location(payload["location"])
    if slot is not None and slot.station != station:
        return f"location: GridLink's upload location of {slot.station!r}, not {station!r}"
    return None


def token_expiry(payload: dict[str, Any], now: datetime) -> datetime:
    """How long an upload location stays valid: a day, plus the retries the charger may use."""
    window = payload.get("retries", 0) * payload.get("retryInterval", 0)
    return now + UPLOAD_TOKEN_TTL + timedelta(
        seconds=min(window, MAX_RETRY_WINDOW.total_seconds()))

