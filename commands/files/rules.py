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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from services import firmware_signatures as signatures
from services.file_transfers import FTP_DOWNLOAD_USER as FTP_DOWNLOAD_USER
from services.file_transfers import FTP_SCHEMES as FTP_SCHEMES
from services.file_transfers import FTP_UPLOAD_USER as FTP_UPLOAD_USER
from services.file_transfers import MAX_RETRY_WINDOW as MAX_RETRY_WINDOW
from services.file_transfers import PROTOCOLS as PROTOCOLS
from services.file_transfers import check_firmware_name as check_firmware_name
from services.file_transfers import diagnostics_location as diagnostics_location
from services.file_transfers import download_expiry as download_expiry
from services.file_transfers import firmware_url as firmware_url
from services.file_transfers import new_token as new_token
from services.file_transfers import offered_protocols as offered_protocols
from services.file_transfers import parse_file_id as parse_file_id
from services.file_transfers import public_base_url as public_base_url
from services.file_transfers import retry_window as _retry_window
from services.file_transfers import transfer_protocol as transfer_protocol
from services.ocpp16 import parse_time

#: How long an upload location stays valid (plus the retries the request allows).
UPLOAD_TOKEN_TTL = timedelta(days=1)
#: SupportedFileTransferProtocols (OCPP 1.6 errata §9.5.1), as URL schemes.
TRANSFER_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
#: What ``--protocol`` may name: the HTTP file server (https with a certificate), FTP, FTPS.

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_UPLOAD_PATH = re.compile(r"(?:^|/)diagnostics/(?P<station>[^/]+)/(?P<token>[^/]+)/?$")
_DOWNLOAD_PATH = re.compile(r"(?:^|/)firmware/(?P<token>[^/]+)/(?P<name>[^/]+)$")
_FTP_UPLOAD_PATH = re.compile(r"(?:^|/)diagnostics/(?P<station>[^/]+)/?$")
_FTP_DOWNLOAD_PATH = re.compile(r"(?:^|/)firmware/(?P<name>[^/]+)$")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")


# --- URLs ---------------------------------------------------------------------------------


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


def ftp_upload_refusal(document: dict[str, Any] | None, now: datetime) -> Refusal | None:
    """Why an FTP login with this upload token is refused; None: it may upload (the token
    names its station: no path to compare with)."""
    return upload_refusal(document, document["station"] if document else "", now)


def ftp_download_refusal(document: dict[str, Any] | None, now: datetime) -> Refusal | None:
    """Why an FTP login with this download token is refused (the image is named later)."""
    return download_refusal(document, document["firmware"] if document else "", now)


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


def token_expiry(payload: dict[str, Any], now: datetime) -> datetime:
    """How long an upload location stays valid: a day, plus the retries the charger may use."""
    return now + UPLOAD_TOKEN_TTL + _retry_window(payload)


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
