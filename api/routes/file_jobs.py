"""Firmware, diagnostics and log jobs through the API with GridLink's own file server:
``POST /stations/{id}/firmware-update``, ``/diagnostics-request``, ``/log-request``
(commands scope) send UpdateFirmware / SignedUpdateFirmware, GetDiagnostics, GetLog with a
fresh download URL or upload location on GridLink's file server (and a fresh requestId),
built as ``gridlink firmware update``, ``gridlink diagnostics request`` and ``gridlink logs
request`` build them (:mod:`services.file_transfers`). The answer follows the command
conventions of :mod:`api.commanding` (``?wait=``, 202 + ``Location``, ``Idempotency-Key``
— a repeated request is recognised by its body, not by the fresh token in its payload).
Images: :mod:`api.routes.stored_files`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api import commanding
from api.auth import Commander
from api.context import ApiContext, Context
from api.problems import Problem, responses
from api.routes.commands import Command, IdempotencyKey, StationId, Timeout, Wait
from services import file_transfers as files
from services.clock import iso, utcnow

router = APIRouter(tags=["files"])

_SENT = {200: {"model": Command, "description": "answered within ?wait"},
         202: {"model": Command, "description": "accepted; poll Location"},
         **responses(401, 403, 404, 409, 422, 503)}
Protocol = Literal["http", "ftp", "ftps"]
Count = Annotated[int | None, Field(ge=0, le=2**31 - 1)]


# --- jobs: UpdateFirmware / SignedUpdateFirmware, GetDiagnostics, GetLog ----------------


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retries: Count = None
    retryInterval: Count = None
    protocol: Protocol | None = Field(None, description="how the charger reaches GridLink's "
                                      "file server (default: the station's, else the best "
                                      "of its SupportedFileTransferProtocols, else http)")


class FirmwareUpdate(Transfer):
    """``image`` (stored with ``PUT /firmware/files/{name}``: GridLink hands out a fresh
    download URL) or ``location`` (another server's URL, sent as it is)."""

    image: str | None = Field(None, min_length=1, max_length=200)
    location: str | None = Field(None, min_length=1, max_length=512)
    retrieveDate: datetime | None = Field(None, description="not before (default: now)")
    signed: bool = Field(False, description="SignedUpdateFirmware with the image's signature")
    installDate: datetime | None = Field(None, description="signed only: install at")


class DiagnosticsRequest(Transfer):
    startTime: datetime | None = None
    stopTime: datetime | None = None


class LogRequest(Transfer):
    logType: Literal["DiagnosticsLog", "SecurityLog"]
    oldestTimestamp: datetime | None = None
    latestTimestamp: datetime | None = None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _invalid(field: str, message: str) -> Problem:
    return Problem(422, f"{field}: {message}", errors=[{"field": field, "message": message,
                                                        "type": "value_error"}])


def _retries(body: Transfer) -> dict[str, int]:
    found = {"retries": body.retries, "retryInterval": body.retryInterval}
    return {key: value for key, value in found.items() if value is not None}


def _range(first: tuple[str, datetime | None], last: tuple[str, datetime | None]
           ) -> dict[str, str]:
    """The ISO dates of a time range (422 if it runs backwards), keyed by field name."""
    start, stop = _utc(first[1]), _utc(last[1])
    if start is not None and stop is not None and start > stop:
        raise _invalid(f"body: {first[0]}", f"after {last[0]}")
    return {name: iso(value) for name, value in ((first[0], start), (last[0], stop))
            if value is not None}


async def _base(ctx: ApiContext, station: str, protocol: str | None) -> str:
    try:
        return await files.file_server_base(ctx.db, ctx.settings, station, protocol)
    except ValueError as exc:
        raise _invalid("body: protocol", str(exc)) from None


async def _send(ctx: ApiContext, caller: Any, response: Response, station: str, action: str,
                payload: dict[str, Any], body: BaseModel, wait_s: float,
                timeout_s: float, idempotency_key: str | None) -> dict[str, Any]:
    commanding.check_payload(action, payload)
    view, final = await commanding.submit(
        ctx, key_id=caller.key_id, station=station, action=action, payload=payload,
        wait_s=wait_s, idempotency_key=idempotency_key,
        timeout_s=timeout_s, digest_payload={"request": body.model_dump(mode="json")})
    response.headers["Location"] = f"/api/v1/commands/{view['id']}"
    response.status_code = 200 if final else 202
    return view


def _firmware_checks(body: FirmwareUpdate) -> tuple[datetime, datetime | None]:
    if (body.image is None) == (body.location is None):
        raise _invalid("body: image", "give image (a stored name) or location (a URL)")
    if body.location is not None:
        if "://" not in body.location:
            raise _invalid("body: location", "a URL (to send a stored image, use image)")
        if body.signed or body.protocol:
            raise _invalid("body: signed" if body.signed else "body: protocol",
                           "needs an image stored with PUT /firmware/files/{name}")
    retrieve = _utc(body.retrieveDate) or utcnow()
    install = _utc(body.installDate)
    if install is not None and not body.signed:
        raise _invalid("body: installDate", "needs signed")
    if install is not None and install < retrieve:
        raise _invalid("body: installDate", "before retrieveDate")
    return retrieve, install


@router.post("/stations/{station}/firmware-update", response_model=Command, responses=_SENT)
async def firmware_update(station: StationId, body: FirmwareUpdate, response: Response,
                          ctx: Context, caller: Commander, wait: Wait = None,
                          timeout_s: Timeout = 30.0,
                          idempotency_key: IdempotencyKey = None) -> Any:
    """UpdateFirmware (or, ``signed``, SignedUpdateFirmware with a fresh requestId) for a
    stored image through a fresh download URL, or for another server's ``location``; as
    ``gridlink firmware update``."""
    retrieve, install = _firmware_checks(body)
    commanding.check_idempotency_key(idempotency_key)
    wait_s = commanding.check_wait(ctx, wait)
    await commanding.require_stations(ctx, [station])
    retries = _retries(body)
    image: dict[str, Any] = {}
    request_id = None
    location = body.location
    if body.image is not None:
        try:
            files.check_firmware_name(body.image)
        except ValueError as exc:
            raise _invalid("body: image", str(exc)) from None
        image = await files.firmware_image(ctx.db, body.image) or {}
        if not image:
            raise _invalid("body: image", f"no firmware {body.image!r}: store it with "
                           "PUT /api/v1/firmware/files/{name} first")
        if body.signed and not (image.get("metadata") or {}).get("signature"):
            raise _invalid("body: signed", f"firmware {body.image!r} has no signature: store "
                           "it with X-Signing-Certificate and X-Signature")
        base = await _base(ctx, station, body.protocol)
        if body.signed:
            request_id = await files.fresh_request_id(ctx.db)
        window = timedelta(seconds=ctx.settings.files_download_window_s)
        token = await files.issue_download_token(
            ctx.db, body.image, station=station, command_id=None,  # bound when it is sent
            expires_at=files.download_expiry(retries, retrieve, utcnow(), window))
        location = files.firmware_url(base, token, body.image)
    assert location is not None
    if not body.signed:
        payload = {"location": location, "retrieveDate": iso(retrieve), **retries}
        return await _send(ctx, caller, response, station, "UpdateFirmware", payload, body,
                           wait_s, timeout_s, idempotency_key)
    payload = files.signed_update_firmware(
        location=location, retrieve=retrieve, install=install,
        metadata=image.get("metadata") or {}, request_id=request_id, retries=retries)
    return await _send(ctx, caller, response, station, "SignedUpdateFirmware", payload, body,
                       wait_s, timeout_s, idempotency_key)


@router.post("/stations/{station}/diagnostics-request", response_model=Command,
             responses=_SENT)
async def diagnostics_request(station: StationId, body: DiagnosticsRequest,
                              response: Response, ctx: Context, caller: Commander,
                              wait: Wait = None, timeout_s: Timeout = 30.0,
                              idempotency_key: IdempotencyKey = None) -> Any:
    """GetDiagnostics with a fresh upload location on GridLink's file server, as
    ``gridlink diagnostics request``; the file: ``GET /diagnostics/files/{id}/content``."""
    times = _range(("startTime", body.startTime), ("stopTime", body.stopTime))
    commanding.check_idempotency_key(idempotency_key)
    wait_s = commanding.check_wait(ctx, wait)
    await commanding.require_stations(ctx, [station])
    base = await _base(ctx, station, body.protocol)
    payload = {"location": files.diagnostics_location(base, station, files.new_token()),
               **times, **_retries(body)}
    return await _send(ctx, caller, response, station, "GetDiagnostics", payload, body,
                       wait_s, timeout_s, idempotency_key)


@router.post("/stations/{station}/log-request", response_model=Command, responses=_SENT)
async def log_request(station: StationId, body: LogRequest, response: Response,
                      ctx: Context, caller: Commander, wait: Wait = None,
                      timeout_s: Timeout = 30.0,
                      idempotency_key: IdempotencyKey = None) -> Any:
    """GetLog (Security Whitepaper N01) with a fresh requestId and upload location on
    GridLink's file server, as ``gridlink logs request``; the file:
    ``GET /logs/files/{id}/content``."""
    times = _range(("oldestTimestamp", body.oldestTimestamp),
                   ("latestTimestamp", body.latestTimestamp))
    commanding.check_idempotency_key(idempotency_key)
    wait_s = commanding.check_wait(ctx, wait)
    await commanding.require_stations(ctx, [station])
    base = await _base(ctx, station, body.protocol)
    log = {"remoteLocation": files.diagnostics_location(base, station, files.new_token()),
           **times}
    payload = {"logType": body.logType, "requestId": await files.fresh_request_id(ctx.db),
               "log": log, **_retries(body)}
    return await _send(ctx, caller, response, station, "GetLog", payload, body, wait_s,
                       timeout_s, idempotency_key)
