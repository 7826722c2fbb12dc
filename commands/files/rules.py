"""Files GridLink exchanges with chargers, without I/O: URLs, tokens, image names, and the
checks UpdateFirmware, SignedUpdateFirmware, GetDiagnostics and GetLog requests must pass
before they are sent.

URLs (``{base}`` = ``GRIDLINK_FILES_PUBLIC_URL``, default ``http://HOST:FILES_PORT``, or
``https://`` when GridLink has a TLS certificate)::

    {base}/diagnostics/{station}/{token}[/{filename}]   PUT or POST (raw body or multipart):
                                                        GetDiagnostics and GetLog uploads
    {base}/firmware/{token}/{name}                      GET, HEAD (Range supported)
    {base}/firmware/{name}                              410 Gone, for every name: a download
                                                        needs a download token

FTP and FTPS (``{ftp}`` = ``ftp[s]://GRIDLINK_FTP_PUBLIC_HOST:GRIDLINK_FTP_PORT``; the token
is the password, the user name says what it is for)::

    {ftp} diagnostics:{token}@ /diagnostics/{station}/  STOR a file (any name) into it:
                                                        GetDiagnostics and GetLog uploads
    {ftp} firmware:{token}@ /firmware/{name}             RETR (REST supported)

Long on purpose: it is the feature package's one pure module (the house layout's
``rules.py``), in sections a reader finds by their headings: URLs and tokens, request
checks, the firmware location, and the merge of a job's status.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from bson import ObjectId

from commands.files import signatures
from services.ocpp16 import parse_time
from services.settings import Settings

#: How long an upload location stays valid (plus the retries the request allows).
UPLOAD_TOKEN_TTL = timedelta(days=1)
#: SupportedFileTransferProtocols (OCPP 1.6 errata §9.5.1), as URL schemes.
TRANSFER_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
FTP_SCHEMES = ("ftp", "ftps")
#: What ``--protocol`` may name: the HTTP file server (https with a certificate), FTP, FTPS.
PROTOCOLS = ("http", "ftp", "ftps")
FTP_UPLOAD_USER = "diagnostics"  # the FTP user of upload tokens (GetDiagnostics, GetLog)
FTP_DOWNLOAD_USER = "firmware"  # the FTP user of download tokens
MAX_RETRY_WINDOW = timedelta(days=30)

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_FIRMWARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
_UPLOAD_PATH = re.compile(r"(?:^|/)diagnostics/(?P<station>[^/]+)/(?P<token>[^/]+)/?$")
_DOWNLOAD_PATH = re.compile(r"(?:^|/)firmware/(?P<token>[^/]+)/(?P<name>[^/]+)$")
_FTP_UPLOAD_PATH = re.compile(r"(?:^|/)diagnostics/(?P<station>[^/]+)/?$")
_FTP_DOWNLOAD_PATH = re.compile(r"(?:^|/)firmware/(?P<name>[^/]+)$")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")


# --- URLs ---------------------------------------------------------------------------------


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


def _ftp_parts(base: str) -> tuple[str, str] | None:
    """(scheme, host:port) of an ftp:// or ftps:// base; None for another scheme."""
    scheme, _, rest = base.partition("://")
    return (scheme.lower(), rest.rstrip("/")) if scheme.lower() in FTP_SCHEMES else None


def new_token() -> str:
    """A fresh upload or download token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def diagnostics_location(base: str, station: str, token: str) -> str:
    """The GetDiagnostics (or GetLog) location for one upload; on an FTP base the token is
    the password and the path a directory (chargers store ``{path}{fileName}``)."""
    ftp = _ftp_parts(base)
    if ftp is not None:
        return (f"{ftp[0]}://{FTP_UPLOAD_USER}:{token}@{ftp[1]}/diagnostics/"
                f"{quote(station, safe='')}/")
    return f"{base.rstrip('/')}/diagnostics/{quote(station, safe='')}/{token}"


def firmware_url(base: str, token: str, name: str) -> str:
    """The download URL of an image through one download token (on an FTP base, the
    token is the password)."""
    ftp = _ftp_parts(base)
    if ftp is not None:
        return f"{ftp[0]}://{FTP_DOWNLOAD_USER}:{token}@{ftp[1]}/firmware/{quote(name, safe='')}"
    return f"{base.rstrip('/')}/firmware/{token}/{quote(name, safe='')}"


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
        parts = urlsplit(location)
        user, password = parts.username, parts.password
    except ValueError:
        return None
    match = _UPLOAD_PATH.search(parts.path)
    if match is not None and _TOKEN.match(match["token"]):
        return UploadLocation(unquote(match["station"]), match["token"])
    match = _FTP_UPLOAD_PATH.search(parts.path)
    if parts.scheme.lower() in FTP_SCHEMES and match is not None and \
            user == FTP_UPLOAD_USER and password and _TOKEN.match(password):
        return UploadLocation(unquote(match["station"]), password)
    return None


@dataclass(frozen=True)
class FirmwareLocation:
    """The image a location names on GridLink's file server, and its download token (None:
    the tokenless form ``{base}/firmware/{name}``, which the file server no longer serves)."""

    name: str
    token: str | None


def parse_firmware_location(location: str, base: str) -> FirmwareLocation | None:
    """The image a firmware location names on GridLink's file server, or None when it is
    somebody else's URL.

    A path ending in ``/firmware/{token}/{name}`` with a token of GridLink's form is
    GridLink's whatever the host (as for upload locations: chargers may reach GridLink under
    several names), as is ``ftp[s]://firmware:{token}@…/firmware/{name}``; the tokenless
    ``{base}/firmware/{name}`` only under GridLink's own base.
    """
    try:
        parts = urlsplit(location)
        user, password = parts.username, parts.password
    except ValueError:
        return None
    match = _DOWNLOAD_PATH.search(parts.path)
    if match is not None and _TOKEN.match(match["token"]):
        return FirmwareLocation(unquote(match["name"]), match["token"])
    ftp_match = _FTP_DOWNLOAD_PATH.search(parts.path)
    if parts.scheme.lower() in FTP_SCHEMES and ftp_match is not None and \
            user == FTP_DOWNLOAD_USER and password and _TOKEN.match(password):
        return FirmwareLocation(unquote(ftp_match["name"]), password)
    prefix = f"{base.rstrip('/')}/firmware/"
    if not location.startswith(prefix):
        return None
    name = unquote(location[len(prefix):])
    return FirmwareLocation(name, None) if name and "/" not in name else None


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


#: Why the file server refuses a transfer: (HTTP status, outcome counted, reason).
Refusal = tuple[int, str, str]


def upload_refusal(document: dict[str, Any] | None, station: str, now: datetime
                   ) -> Refusal | None:
    """Why an upload with this token is refused; None: it may reserve the token."""
    if document is None or document["station"] != station:
        return 404, "unknown_token", "unknown upload location"
    if document["expires_at"] <= now:
        return 403, "expired", "upload location expired"
    if document.get("used_at") is not None:
        return 403, "used", "upload location used already: each takes one upload"
    reserved_until = document.get("reserved_until")
    if reserved_until is not None and reserved_until > now:
        return 409, "in_use", "an upload to this location is in progress"
    return None


def download_refusal(document: dict[str, Any] | None, name: str, now: datetime
                     ) -> Refusal | None:
    """Why a download with this token is refused; None: serve the image.

    An unknown token and a token of another image get the same answer, so a token holder
    learns nothing about which other images exist."""
    if document is None or document["firmware"] != name:
        return 404, "not_found", "no such download"
    if document["expires_at"] <= now:
        return 403, "expired", "download URL expired: ask for a new firmware update"
    return None


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


def ftp_upload_refusal(document: dict[str, Any] | None, now: datetime) -> Refusal | None:
    """Why an FTP login with this upload token is refused; None: it may upload (the token
    names its station: no path to compare with)."""
    return upload_refusal(document, document["station"] if document else "", now)


def ftp_download_refusal(document: dict[str, Any] | None, now: datetime) -> Refusal | None:
    """Why an FTP login with this download token is refused (the image is named later)."""
    return download_refusal(document, document["firmware"] if document else "", now)


def parse_file_id(text: str) -> ObjectId:
    """A diagnostics file id as printed by ``gridlink diagnostics list``; ValueError if not."""
    if not ObjectId.is_valid(text):
        raise ValueError(f"not a file id: {text!r}")
    return ObjectId(text)


# --- request checks -----------------------------------------------------------------------


def location_problem(location: str, field: str = "location") -> str | None:
    """Why a charger could not use this location, or None."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return f"{field}: not a URL"
    if parts.scheme.lower() not in TRANSFER_SCHEMES:
        return (f"{field}: unsupported scheme {parts.scheme!r} "
                "(SupportedFileTransferProtocols: http, https, ftp, ftps)")
    if not parts.netloc:
        return f"{field}: no host"
    return None


def retry_problem(payload: dict[str, Any]) -> str | None:
    for key in ("retries", "retryInterval"):
        if payload.get(key, 0) < 0:
            return f"{key} must not be negative"
    return None


def update_firmware_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a (schema-valid) UpdateFirmware payload, or None."""
    return location_problem(payload["location"]) or retry_problem(payload)


def signed_update_firmware_problem(payload: dict[str, Any], now: datetime) -> str | None:
    """What is wrong with a (schema-valid) SignedUpdateFirmware payload, or None: the
    location, retries, install not before retrieval, a signing certificate that parses (an
    allowed key, valid now) and a base64 signature."""
    firmware = payload["firmware"]
    problem = location_problem(firmware["location"], "firmware.location") or \
        retry_problem(payload)
    if problem is not None:
        return problem
    if "installDateTime" in firmware and parse_time(firmware["installDateTime"]) < \
            parse_time(firmware["retrieveDateTime"]):
        return "firmware.installDateTime is before firmware.retrieveDateTime"
    return signatures.certificate_problem(firmware["signingCertificate"], now) or \
        signatures.signature_problem(firmware["signature"])


def upload_location_problem(location: str, field: str, station: str) -> str | None:
    """Why an upload location cannot be handed to ``station``, or None."""
    problem = location_problem(location, field)
    if problem is not None:
        return problem
    slot = parse_upload_location(location)
    if slot is not None and slot.station != station:
        return f"{field}: GridLink's upload location of {slot.station!r}, not {station!r}"
    return None


def get_diagnostics_problem(payload: dict[str, Any], station: str) -> str | None:
    """What is wrong with a (schema-valid) GetDiagnostics payload for ``station``, or None."""
    problem = location_problem(payload["location"]) or retry_problem(payload)
    if problem is not None:
        return problem
    if "startTime" in payload and "stopTime" in payload and \
            parse_time(payload["startTime"]) > parse_time(payload["stopTime"]):
        return "startTime is after stopTime"
    return upload_location_problem(payload["location"], "location", station)


def get_log_problem(payload: dict[str, Any], station: str) -> str | None:
    """What is wrong with a (schema-valid) GetLog payload for ``station``, or None."""
    log = payload["log"]
    problem = location_problem(log["remoteLocation"], "log.remoteLocation") or \
        retry_problem(payload)
    if problem is not None:
        return problem
    if "oldestTimestamp" in log and "latestTimestamp" in log and \
            parse_time(log["oldestTimestamp"]) > parse_time(log["latestTimestamp"]):
        return "log.oldestTimestamp is after log.latestTimestamp"
    return upload_location_problem(log["remoteLocation"], "log.remoteLocation", station)


def _retry_window(payload: dict[str, Any]) -> timedelta:
    window = payload.get("retries", 0) * payload.get("retryInterval", 0)
    return timedelta(seconds=min(window, MAX_RETRY_WINDOW.total_seconds()))


def token_expiry(payload: dict[str, Any], now: datetime) -> datetime:
    """How long an upload location stays valid: a day, plus the retries the charger may use."""
    return now + UPLOAD_TOKEN_TTL + _retry_window(payload)


def download_expiry(payload: dict[str, Any], retrieve: datetime, now: datetime,
                    window: timedelta) -> datetime:
    """How long a download URL stays valid: from the retrieve date (now, if that is past) for
    ``window`` (GRIDLINK_FILES_DOWNLOAD_WINDOW_S), plus the retries the request allows.
    ``payload`` holds ``retries`` and ``retryInterval`` (UpdateFirmware's or
    SignedUpdateFirmware's)."""
    return max(retrieve, now) + window + _retry_window(payload)


# --- the firmware location of UpdateFirmware and SignedUpdateFirmware ---------------------


def firmware_location_of(action: str, payload: dict[str, Any]) -> str:
    """Where the charger is told to download the image."""
    if action == "SignedUpdateFirmware":
        return str(payload["firmware"]["location"])
    return str(payload["location"])


def with_firmware_location(action: str, payload: dict[str, Any], location: str
                           ) -> dict[str, Any]:
    """A copy of the payload with another download location."""
    if action == "SignedUpdateFirmware":
        return {**payload, "firmware": {**payload["firmware"], "location": location}}
    return {**payload, "location": location}


def retrieve_time_of(action: str, payload: dict[str, Any]) -> datetime:
    """When the charger is to download the image."""
    if action == "SignedUpdateFirmware":
        return parse_time(payload["firmware"]["retrieveDateTime"])
    return parse_time(payload["retrieveDate"])


# --- job status: the merge of everything the charger said ---------------------------------

#: Who reported a status: the charger (a notification) or GridLink (``Superseded``).
CHARGER, CSMS = "charger", "csms"


@dataclass(frozen=True)
class StatusMachine:
    """The statuses of one kind of job: the open ones step by step (statuses of one step may
    follow each other, a download paused and resumed), the final ones, and among those the
    ones only the charger's *answer* sets (``NoDiagnostics``: GetDiagnostics.conf named no
    file), which any later word of the charger's replaces."""

    ranks: tuple[tuple[str, ...], ...]
    final: frozenset[str]
    answer_final: frozenset[str] = frozenset()

    @property
    def steps(self) -> tuple[str, ...]:
        """The open statuses, in order."""
        return tuple(status for rank in self.ranks for status in rank)

    def rank(self, status: str) -> int | None:
        """The step of an open status, len(ranks) for a final one, None for one that never
        changes a job (Idle, or a status this machine does not know)."""
        if status in self.final:
            return len(self.ranks)
        for index, rank in enumerate(self.ranks):
            if status in rank:
                return index
        return None

    def may_follow(self, status: str) -> list[str] | None:
        """The job statuses ``status`` may replace; None if it never changes a job (Idle)."""
        rank = self.rank(status)
        if rank is None:
            return None
        return [s for earlier in self.ranks[: rank + 1] for s in earlier]


@dataclass(frozen=True)
class StatusReport:
    """One status a job heard of: when (the charger's timestamp, or — for 1.6 notifications,
    which carry none — when the gateway received it) and from whom."""

    status: str
    at: datetime
    source: str = CHARGER


@dataclass(frozen=True)
class MergedStatus:
    """A job's status, when it was reported (None: only the answer), and which reports (by
    index) make up its path."""

    status: str
    at: datetime | None
    applied: frozenset[int]


def merge_status(machine: StatusMachine, answer: str, reports: list[StatusReport]
                 ) -> MergedStatus:
    """A job's status: the merge of its answer's status and every report, in timestamp order
    whatever order they were received or processed in.

    From the answer's status (``Accepted``, or an answer-only final such as ``NoDiagnostics``)
    each report in turn moves the job forward — to a status of the same or a later step, or
    to a final one — and nothing moves it after a final status; Idle changes nothing. The
    answer's status is the least informative word: a charger's report replaces it even when
    it came first (a charger that reports ``UploadFailed`` and then answers without a
    fileName failed; it did not have "no diagnostics"), but GridLink's ``Superseded`` does
    not end a job the answer finished. Reports at the same instant are taken step by step.
    """
    def order(index: int) -> tuple[datetime, int]:
        rank = machine.rank(reports[index].status)
        return reports[index].at, -1 if rank is None else rank

    status, at, applied = answer, None, set()
    for index in sorted(range(len(reports)), key=order):
        report = reports[index]
        if status in machine.final and status not in machine.answer_final:
            break
        rank = machine.rank(report.status)
        if rank is None:
            continue
        if status in machine.answer_final:
            if report.source != CHARGER:
                continue
        elif report.status not in machine.final and rank < (machine.rank(status) or 0):
            continue
        status, at = report.status, report.at
        applied.add(index)
    return MergedStatus(status, at, frozenset(applied))
