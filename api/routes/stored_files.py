"""Files on GridLink's own file server through the API (see :mod:`api.routes.file_jobs`
for the commands that use them):

- ``PUT /firmware/files/{name}`` (admin): store an image, the raw body
  (``application/octet-stream``, at most GRIDLINK_API_MAX_FIRMWARE_BYTES), with its SHA-256;
  for signed firmware also the headers ``X-Signing-Certificate`` (the PEM certificate,
  base64-encoded: a header holds no line breaks) and ``X-Signature`` (base64), verified
  against the image (RSA-PSS or ECDSA, SHA-256), as ``gridlink firmware add`` does. 201
  with the stored file; the same name again: 200 if the content (and signature) is
  identical, else 409. The body goes to GridFS as it arrives, never whole in memory.
- ``GET /diagnostics/files/{id}/content``, ``/logs/files/{id}/content`` (read): what a
  charger uploaded, streamed from GridFS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

from bson import ObjectId
from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import StreamingResponse
from gridfs import AsyncGridFSBucket
from pydantic import BaseModel, ConfigDict

from api.auth import Admin, Reader
from api.context import ApiContext, Context
from api.problems import Problem, responses
from api.representations import plain
from services import file_transfers as files
from services import firmware_signatures as signatures
from services.clock import utcnow
from services.command_records import DIAGNOSTICS_BUCKET, FIRMWARE_BUCKET, LOG_BUCKET

router = APIRouter(tags=["files"])

_OCTETS = "application/octet-stream"


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
