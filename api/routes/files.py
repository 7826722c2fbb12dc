"""Files through GridLink's own file server, as ``gridlink firmware|diagnostics|logs`` do:

- ``PUT /firmware/files/{name}`` (admin): store an image, the raw body
  (``application/octet-stream``, at most GRIDLINK_API_MAX_FIRMWARE_BYTES), with its SHA-256;
  for signed firmware also the headers ``X-Signing-Certificate`` (the PEM certificate,
  base64-encoded: a header holds no line breaks) and ``X-Signature`` (base64), verified
  against the image (RSA-PSS or ECDSA, SHA-256). 201 with the stored file; the same name
  again: 200 if the content (and signature) is identical, else 409.
- ``POST /stations/{id}/firmware-update``, ``/diagnostics-request``, ``/log-request``
  (commands): UpdateFirmware / SignedUpdateFirmware, GetDiagnostics, GetLog with a fresh
  download URL or upload location on GridLink's file server (and a fresh requestId), as
  the CLI builds them (:mod:`services.file_transfers`); the answer follows the command
  conventions of :mod:`api.commanding` (``?wait=``, 202 + ``Location``,
  ``Idempotency-Key`` — identifying the request by its body, not by the fresh token).
- ``GET /diagnostics/files/{id}/content``, ``/logs/files/{id}/content`` (read): what a
  charger uploaded, streamed from GridFS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from bson import ObjectId
from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import StreamingResponse
from gridfs import AsyncGridFSBucket
from pydantic import BaseModel, ConfigDict, Field

from api import commanding
from api.auth import Admin, Commander, Reader
from api.context import ApiContext, Context
from api.problems import Problem, responses
from api.representations import plain
from api.routes.commands import Command, IdempotencyKey, StationId, Timeout, Wait
from services import file_transfers as files
from services import firmware_signatures as signatures
from services.clock import iso, utcnow
from services.command_records import DIAGNOSTICS_BUCKET, FIRMWARE_BUCKET, LOG_BUCKET

router = APIRouter(tags=["files"])

_SENT = {200: {"model": Command, "description": "answered within ?wait"},
         202: {"model": Command, "description": "accepted; poll Location"},
         **responses(401, 403, 404, 409, 422, 503)}
_OCTETS = "application/octet-stream"
Protocol = Literal["http", "ftp", "ftps"]
Count = Annotated[int | None, Field(ge=0, le=2**31 - 1)]


class StoredFile(BaseModel):
    """A GridFS file as stored (``metadata``: sha256, signature ... in camelCase)."""

    model_config = ConfigDict(extra="allow")
    id: str
    filename: str
    length: int


# --- firmware images ----------------------------------------------------------------------


def _signature_metadata(certificate_b64: str | None, signature_b64: str | None,
                        digest: bytes) -> dict[str, Any]:
    """What a signed image stores (checked here, as ``gridlink firmware add`` does)."""
    if certificate_b64 is None and signature_b64 is None:
        return {}
    if certificate_b64 is None or signature_b64 is None:
        raise Problem(422, "X-Signing-Certificate and X-Signature go together")
    try:
        try:
            pem = base64.b64decode(certificate_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise signatures.SignatureError(
                "header: X-Signing-Certificate: not base64 (the PEM file, base64-encoded)"
            ) from None
        certificate = signatures.load_certificate(pem)
        text = signatures.certificate_pem(certificate)
        problem = signatures.certificate_problem(text, utcnow())
        if problem is not None:
            raise signatures.SignatureError(problem)
        signature = signatures.decode(signature_b64)
        if not signatures.verifies(certificate, digest, signature):
            raise signatures.SignatureError(
                "header: X-Signature: the signature does not verify with the signing "
                "certificate over the image (RSA-PSS or ECDSA, SHA-256)")
        encoded = signatures.encode(signature)
    except signatures.SignatureError as exc:
        raise Problem(422, str(exc)) from None
    return {"signing_certificate": text, "signature": encoded,
            "signature_algorithm": signatures.algorithm(certificate)}


async def _hashed(chunks: AsyncIterator[bytes], digest: Any) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        digest.update(chunk)
        yield chunk


async def _digest_of(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes | None:
    """SHA-256 of a body (nothing stored); None if it is longer than ``max_bytes``."""
    digest, size = hashlib.sha256(), 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            return None
        digest.update(chunk)
    return digest.digest()


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, f"the image is larger than {max_bytes} bytes "
                   "(GRIDLINK_API_MAX_FIRMWARE_BYTES)", title="Content Too Large")


def _same_signature(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(stored.get(key) == wanted.get(key)
               for key in ("signing_certificate", "signature"))


@router.put("/firmware/files/{name}", status_code=201, response_model=StoredFile,
            responses={200: {"model": StoredFile, "description": "stored already, identical"},
                       201: {"model": StoredFile, "description": "stored"},
                       **responses(401, 403, 409, 413, 415, 422)},
            openapi_extra={"requestBody": {"required": True, "content": {
                _OCTETS: {"schema": {"type": "string", "format": "binary"}}}}})
async def put_firmware(
        name: Annotated[str, Path(min_length=1, max_length=200)], request: Request,
        response: Response, ctx: Context, caller: Admin,
        signing_certificate: Annotated[str | None, Header(
            alias="X-Signing-Certificate", max_length=8000,
            description="signed firmware: the PEM Firmware Signing Certificate, base64")] = None,
        signature: Annotated[str | None, Header(
            alias="X-Signature", max_length=1200,
            description="signed firmware: the image's signature, base64")] = None) -> Any:
    """Store a firmware image (the raw body) on GridLink's file server, as ``gridlink
    firmware add``; then ``POST /stations/{id}/firmware-update`` with ``image``."""
    try:
        files.check_firmware_name(name)
    except ValueError as exc:
        raise Problem(422, f"path: name: {exc}") from None
    if (signing_certificate is None) != (signature is None):
        raise Problem(422, "X-Signing-Certificate and X-Signature go together")
    content_type = request.headers.get("content-type", _OCTETS).split(";")[0].strip().lower()
    if content_type != _OCTETS:
        raise Problem(415, f"the image is the raw body, Content-Type {_OCTETS}")
    max_bytes = ctx.settings.api_max_firmware_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise _too_large(max_bytes)
    existing = await files.firmware_image(ctx.db, name)
    if existing is not None:
        digest = await _digest_of(request.stream(), max_bytes)
        if digest is None:
            raise _too_large(max_bytes)
        stored = existing.get("metadata") or {}
        wanted = _signature_metadata(signing_certificate, signature, digest)
        if stored.get("sha256") != digest.hex() or not _same_signature(stored, wanted):
            raise Problem(409, f"firmware {name!r} exists already with other content: "
                          "store the new image under another name")
        response.status_code = 200
        return plain(existing)
    sha = hashlib.sha256()
    stored_id = await _store(ctx, name, _hashed(request.stream(), sha), max_bytes)
    try:
        metadata = {"sha256": sha.hexdigest(),
                    **_signature_metadata(signing_certificate, signature, sha.digest())}
        first = await ctx.db[f"{FIRMWARE_BUCKET}.files"].find_one(
            {"filename": name}, sort=[("_id", 1)])
        if first is not None and first["_id"] != stored_id:  # a concurrent PUT won
            raise Problem(409, f"firmware {name!r} was stored meanwhile by another request")
    except BaseException:
        await files.firmware_bucket(ctx.db).delete(stored_id)
        raise
    await ctx.db[f"{FIRMWARE_BUCKET}.files"].update_one(
        {"_id": stored_id}, {"$set": {f"metadata.{key}": value
                                      for key, value in metadata.items()}})
    document = await ctx.db[f"{FIRMWARE_BUCKET}.files"].find_one({"_id": stored_id})
    response.headers["Location"] = f"/api/v1/firmware/files/{quote(name, safe='')}"
    return plain(document)


async def _store(ctx: ApiContext, name: str, chunks: AsyncIterator[bytes],
                 max_bytes: int) -> ObjectId:
    stored = await files.store_firmware_stream(ctx.db, name, chunks, {}, max_bytes)
    if stored is None:
        raise _too_large(max_bytes)
    return stored[0]


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
                payload: dict[str, Any], body: BaseModel, wait: float | None,
                timeout_s: float, idempotency_key: str | None) -> dict[str, Any]:
    commanding.check_payload(action, payload)
    view, final = await commanding.submit(
        ctx, key_id=caller.key_id, station=station, action=action, payload=payload,
        wait_s=commanding.check_wait(ctx, wait), idempotency_key=idempotency_key,
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
                           wait, timeout_s, idempotency_key)
    metadata = image.get("metadata") or {}
    firmware = {"location": location, "retrieveDateTime": iso(retrieve),
                "signingCertificate": metadata["signing_certificate"],
                "signature": metadata["signature"]}
    if install is not None:
        firmware["installDateTime"] = iso(install)
    payload = {"requestId": request_id, "firmware": firmware, **retries}
    return await _send(ctx, caller, response, station, "SignedUpdateFirmware", payload, body,
                       wait, timeout_s, idempotency_key)


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
    await commanding.require_stations(ctx, [station])
    base = await _base(ctx, station, body.protocol)
    payload = {"location": files.diagnostics_location(base, station, files.new_token()),
               **times, **_retries(body)}
    return await _send(ctx, caller, response, station, "GetDiagnostics", payload, body,
                       wait, timeout_s, idempotency_key)


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
    await commanding.require_stations(ctx, [station])
    base = await _base(ctx, station, body.protocol)
    log = {"remoteLocation": files.diagnostics_location(base, station, files.new_token()),
           **times}
    payload = {"logType": body.logType, "requestId": await files.fresh_request_id(ctx.db),
               "log": log, **_retries(body)}
    return await _send(ctx, caller, response, station, "GetLog", payload, body, wait,
                       timeout_s, idempotency_key)


# --- uploaded files -----------------------------------------------------------------------


def _content_route(kind: str, bucket_name: str) -> None:
    async def content(file_id: Annotated[str, Path(max_length=64)], ctx: Context,
                      caller: Reader) -> Any:
        if not ObjectId.is_valid(file_id):
            raise Problem(404, f"no {kind} file {file_id!r}")
        found = await ctx.db[f"{bucket_name}.files"].find_one({"_id": ObjectId(file_id)})
        if found is None:
            raise Problem(404, f"no {kind} file {file_id!r}")
        stream = await AsyncGridFSBucket(ctx.db, bucket_name=bucket_name
                                         ).open_download_stream(found["_id"])

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await stream.readchunk():
                yield chunk

        filename = quote(str(found.get("filename") or file_id), safe="")
        return StreamingResponse(chunks(), media_type=_OCTETS, headers={
            "Content-Length": str(found["length"]),
            "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
            "X-Content-Type-Options": "nosniff"})

    router.add_api_route(
        f"/{kind}/files/{{file_id}}/content", content, methods=["GET"],
        name=f"{kind}_file_content", operation_id=f"get_{kind}_file_content",
        summary=f"The bytes of an uploaded {kind} file",
        responses={200: {"content": {_OCTETS: {"schema": {"type": "string",
                                                          "format": "binary"}}}},
                   **responses(401, 403, 404)}, response_class=StreamingResponse)


_content_route("diagnostics", DIAGNOSTICS_BUCKET)
_content_route("logs", LOG_BUCKET)
