"""The download location of an UpdateFirmware or SignedUpdateFirmware before it is sent.

- :func:`tokenise` (a ``hooks.prepare`` step): a tokenless URL of GridLink's file server
  (``{base}/firmware/{name}``, which the server no longer serves) becomes a fresh download
  URL for this command.
- :func:`check`: a location on GridLink's file server must name an image it holds, through
  a download token issued for that image, not expired, valid until the retrieve date, and
  not held by another command (it is then bound to this one). Other locations (the
  manufacturer's server, your FTP server) are sent as they are.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.files import download_tokens, repository, rules
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.ocpp16 import utcnow

Db = repository.Db
INVALID = "PropertyConstraintViolation"
UNKNOWN = "UnknownFirmware"


async def tokenise(db: Db, request: CommandRequest, base: str, window: timedelta
                   ) -> CommandRequest:
    """The request, its tokenless GridLink firmware URL (if any) given a download token."""
    action, payload = request.action, request.payload
    location = rules.parse_firmware_location(rules.firmware_location_of(action, payload), base)
    if location is None or location.token is not None:
        return request
    try:
        rules.check_firmware_name(location.name)
    except ValueError:
        return request  # check() says what is wrong with it
    expires_at = rules.download_expiry(payload, rules.retrieve_time_of(action, payload),
                                       utcnow(), window)
    token = await download_tokens.issue(db, location.name, station=request.station,
                                        command_id=request.command_id, expires_at=expires_at)
    url = rules.firmware_url(base, token, location.name)
    return request.model_copy(
        update={"payload": rules.with_firmware_location(action, payload, url)})


async def check(db: Db, request: CommandRequest, base: str) -> dict[str, Any] | None:
    """The image (GridFS files document) a location on GridLink's file server names, its
    token bound to this command; None for somebody else's URL. CommandRefused otherwise."""
    action, payload = request.action, request.payload
    field = "firmware.location" if action == "SignedUpdateFirmware" else "location"
    location = rules.parse_firmware_location(rules.firmware_location_of(action, payload), base)
    if location is None:
        return None
    try:
        rules.check_firmware_name(location.name)
    except ValueError as exc:
        raise CommandRefused(INVALID, f"{field}: {exc}") from None
    image = await repository.firmware_image(db, location.name)
    if image is None:
        raise CommandRefused(UNKNOWN, f"no firmware {location.name!r} on this file server")
    if location.token is None:  # tokenise() ran before: only when the name was invalid
        raise CommandRefused(INVALID, f"{field}: a firmware URL without a download token")
    token = await download_tokens.get(db, location.token)
    if token is None or token["firmware"] != location.name:
        raise CommandRefused(INVALID, f"{field}: not a download URL this file server issued")
    retrieve, now = rules.retrieve_time_of(action, payload), utcnow()
    if token["expires_at"] <= now:
        raise CommandRefused(INVALID, f"{field}: the download URL expired")
    if token["expires_at"] <= retrieve:
        raise CommandRefused(INVALID, f"{field}: the download URL expires before the "
                             "retrieve date")
    if await download_tokens.bind(db, location.token, request.station,
                                  request.command_id) is None:
        raise CommandRefused(INVALID, f"{field}: this download URL belongs to another command")
    return image
