"""SignedUpdateFirmware and SignedFirmwareStatusNotification (Security Whitepaper use cases
L01-L03, "Secure firmware update").

- **SignedUpdateFirmware** is checked before it is recorded: ``firmware.location`` an http,
  https, ftp or ftps URL with a host, no negative retries or retryInterval,
  ``installDateTime`` not before ``retrieveDateTime``, a ``signingCertificate`` that is one
  PEM X.509 certificate with an RSA (≥ 2048 bits) or elliptic curve (≥ 224 bits) key, valid
  now, a base64 ``signature``, and a ``requestId`` no other SignedUpdateFirmware of the
  station holds. A location on GridLink's file server goes through a download token of
  this command (a tokenless one is given one), and must name an image stored with a
  signature and certificate — the very ones the request carries (L01.FR.11).
- When the charger accepts (``Accepted``, or ``AcceptedCanceled``: it cancelled an ongoing
  update for this one, L01.FR.26), a **signed-firmware job** (``signed_firmware_jobs``,
  ``_id`` = command id, with ``request_id``) starts in ``Accepted`` and follows the
  SignedFirmwareStatusNotifications that carry its requestId (L01.FR.10), forward only:
  DownloadScheduled → Downloading / DownloadPaused → Downloaded → SignatureVerified →
  InstallScheduled → InstallRebooting / Installing → Installed, or DownloadFailed,
  InvalidSignature, InstallVerificationFailed, InstallationFailed.
- InvalidSignature and InstallVerificationFailed are also stored as security events
  (``security_events``, source ``csms``: InvalidFirmwareSignature,
  FirmwareInstallVerificationFailed), as is an answer InvalidCertificate or
  RevokedCertificate (InvalidFirmwareSigningCertificate), once per notification or command.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.files import firmware_locations, request_ids, rules
from commands.files.jobs import ACCEPTED, SIGNED_FIRMWARE, JobBook, new_job
from commands.hooks import CommandHooks, refuse
from services import security_events
from services.envelope import CommandRequest
from services.ocpp16 import call, call_result, parse_time, utcnow
from services.router import CallContext
from services.runtime import ServiceRuntime

ACTION = "SignedUpdateFirmware"
#: Notification statuses (and answers) that are security events, as GridLink names them.
SECURITY_EVENTS = {
    "InvalidSignature": "InvalidFirmwareSignature",
    "InstallVerificationFailed": "FirmwareInstallVerificationFailed",
    "InvalidCertificate": "InvalidFirmwareSigningCertificate",
    "RevokedCertificate": "InvalidFirmwareSigningCertificate",
}


def register(hooks: CommandHooks, base: str, window: timedelta) -> None:
    """Wire SignedUpdateFirmware and SignedFirmwareStatusNotification into the command
    path."""
    db = hooks.runtime.store.db
    jobs = JobBook(db, SIGNED_FIRMWARE)

    @hooks.router.on("SignedFirmwareStatusNotification")
    async def signed_firmware_status(request: call.SignedFirmwareStatusNotification,
                                     ctx: CallContext
                                     ) -> call_result.SignedFirmwareStatusNotification:
        message = f"{ctx.session}/{ctx.unique_id}"
        await jobs.notify(ctx.station, request.status, ctx.received_at, message,
                          request.request_id)
        if request.status in SECURITY_EVENTS:
            await security_events.record(db, security_events.event_document(
                station=ctx.station, type=SECURITY_EVENTS[request.status],
                at=ctx.received_at, source=security_events.CSMS,
                tech_info=f"SignedFirmwareStatusNotification {request.status}, requestId "
                f"{request.request_id}", key=f"{ctx.station}\0{message}"))
        return call_result.SignedFirmwareStatusNotification()

    @hooks.prepare(ACTION)
    async def signed_update_location(rt: ServiceRuntime, request: CommandRequest
                                     ) -> CommandRequest:
        return await rt.with_store(lambda: firmware_locations.tokenise(db, request, base,
                                                                       window))

    @hooks.validate(ACTION)
    async def signed_update_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload = request.payload
        problem = rules.signed_update_firmware_problem(payload, utcnow())
        if problem is not None:
            refuse(("PropertyConstraintViolation", problem))
        await request_ids.claim_or_refuse(rt, db, request)
        image = await rt.with_store(lambda: firmware_locations.check(db, request, base))
        if image is not None:
            refuse(signature_problem(image, payload["firmware"]))

    @hooks.after(ACTION)
    async def signed_firmware_job(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        answer = (command.get("response") or {}).get("status")
        if answer in SECURITY_EVENTS:
            await rt.with_store(lambda: security_events.record(
                db, security_events.event_document(
                    station=command["station"], type=SECURITY_EVENTS[answer],
                    at=command.get("updated_at") or utcnow(), source=security_events.CSMS,
                    tech_info=f"SignedUpdateFirmware answered {answer}",
                    key=f"{command['station']}\0command\0{command['_id']}")))
        if command["status"] != "accepted":
            return  # Rejected, InvalidCertificate, ...: the command's own record says why
        payload = command["payload"]
        firmware = payload["firmware"]
        location = rules.parse_firmware_location(firmware["location"], base)
        install = firmware.get("installDateTime")
        job = new_job(command, ACCEPTED, request_id=payload["requestId"],
                      location=firmware["location"],
                      firmware=location.name if location else None,
                      retrieve_date=parse_time(firmware["retrieveDateTime"]),
                      install_date=parse_time(install) if install else None,
                      retries=payload.get("retries"), retry_interval=payload.get("retryInterval"),
                      answer=answer)
        await rt.with_store(lambda: jobs.open(job))


def signature_problem(image: dict[str, Any], firmware: dict[str, Any]
                      ) -> tuple[str, str] | None:
    """Why a request may not send this stored image with its signature, or None: the image
    must have been stored signed, and the request carry its certificate and signature."""
    metadata = image.get("metadata") or {}
    name = image["filename"]
    if not metadata.get("signature") or not metadata.get("signing_certificate"):
        return ("UnsignedFirmware", f"firmware {name!r} has no signature: add it with "
                "--signing-certificate and --signature-file or --signing-key")
    if firmware["signature"].strip() != metadata["signature"] or \
            firmware["signingCertificate"].strip() != metadata["signing_certificate"].strip():
        return ("PropertyConstraintViolation", "firmware.signature and signingCertificate "
                f"must be the ones stored with {name!r}")
    return None
