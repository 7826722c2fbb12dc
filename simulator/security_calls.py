"""How a simulated charge point answers the security extension's CSMS calls (OCPP 1.6
Security Whitepaper ed. 2), and the CALLs that follow; like :mod:`simulator.csms_calls`,
one function per action, seeing the charger through
:class:`~simulator.answering.AnsweringCharger`, no I/O.

- Certificates: CertificateSigned (A02/A03: Accepted when the chain's leaf is for the key of
  the charger's last CSR and not expired; the charger then connects with it), and the
  inventory of InstallCertificate, GetInstalledCertificateIds, DeleteCertificate (M03-M05):
  :mod:`simulator.certificate_store`.
- GetLog (N01): Accepted with a filename (AcceptedCanceled when another upload is going on,
  N01.FR.11; Rejected for a location that is not http(s): the simulator transfers over
  HTTP(S) only, as ``SupportedFileTransferProtocols`` says).  The driver PUTs the security
  log or a small diagnostics file to ``remoteLocation`` (the filename appended when it ends
  in ``/``); LogStatusNotification Uploading, then Uploaded or UploadFailure, each with the
  requestId (N01.FR.07-10).
- SignedUpdateFirmware (L01): InvalidCertificate, and the InvalidFirmwareSigningCertificate
  event, for a signing certificate that does not parse, is not valid now, or was not issued
  by an installed ManufacturerRootCertificate (when none is installed the issuer is not
  checked); Rejected for a location that is not http(s); else Accepted (AcceptedCanceled when
  an update was in progress, L01.FR.26).  DownloadScheduled when ``retrieveDateTime`` is
  ahead; the driver GETs the image then; SignedFirmwareStatusNotification Downloading,
  Downloaded (or DownloadFailed), SignatureVerified (or InvalidSignature and the
  InvalidFirmwareSignature event), Installing, Installed and the FirmwareUpdated event, each
  with the requestId (L01.FR.01/10).  It installs at once: ``installDateTime`` and running
  transactions are not waited for, and there is no reboot.
- ExtendedTriggerMessage: the core messages as TriggerMessage; LogStatusNotification (the
  upload going on, or Idle, N01.FR.12); FirmwareStatusNotification as a
  SignedFirmwareStatusNotification (the last status sent, or Idle after Installed or before
  any, L01.FR.28/29); SignChargePointCertificate (A02): a new key pair and a SignCertificate
  with its CSR (CN the charger's ``certificate_cn``, O its ``CpoName``; Rejected while CpoName
  is not set, A02's prerequisite).

The unsigned UpdateFirmware of core 1.6 is still answered (:mod:`simulator.csms_calls`) so
that both paths can be exercised, where L01.FR.20 has a charger that supports signed updates
answer it NotSupported.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from ocpp.v16 import call, call_result, enums

from simulator import certificates as certs
from simulator.answering import AnsweringCharger, Handler
from simulator.certificate_store import MANUFACTURER_ROOT
from simulator.connectors import PendingCall
from simulator.csms_calls import queue_triggered
from simulator.security import (
    DOWNLOAD,
    UPLOAD,
    FirmwareUpdate,
    SecurityEvent,
    Transfer,
    TransferOutcome,
)

#: The schemes the simulator transfers files with (its SupportedFileTransferProtocols).
TRANSFER_SCHEMES = ("http", "https")


def _now(charger: AnsweringCharger) -> datetime:
    return datetime.fromtimestamp(charger.wall_clock(), UTC)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the CALLs the security extension adds to a charger's ---------------------------------


def queue_security_event(charger: AnsweringCharger, event: SecurityEvent) -> None:
    """Queue a SecurityEventNotification of ``event``, unless one of its type is waiting."""
    waiting = charger.security.queued_events
    if event.type in waiting:
        return
    waiting.add(event.type)

    def build() -> call.SecurityEventNotification:
        waiting.discard(event.type)
        return call.SecurityEventNotification(
            type=event.type, timestamp=event.timestamp, tech_info=event.tech_info
        )

    charger.enqueue(PendingCall("SecurityEventNotification", build))


def _log_status(status: str, request_id: int | None) -> PendingCall:
    return PendingCall(
        "LogStatusNotification",
        lambda: call.LogStatusNotification(
            status=enums.UploadLogStatus(status),
            request_id=request_id,  # type: ignore[arg-type]  # optional in the schema
        ),
    )


def _firmware_status(charger: AnsweringCharger, status: str, request_id: int | None) -> PendingCall:
    def build() -> call.SignedFirmwareStatusNotification:
        if request_id is not None:
            charger.security.firmware_status = (status, request_id)
        return call.SignedFirmwareStatusNotification(
            status=enums.FirmwareStatus(status),
            request_id=request_id,  # type: ignore[arg-type]  # none for Idle (L01.FR.21)
        )

    return PendingCall("SignedFirmwareStatusNotification", build)


def sign_certificate_call(charger: AnsweringCharger) -> PendingCall:
    """A SignCertificate whose CSR is for a key pair made when it is sent (A02.FR.02/03)."""

    def build() -> call.SignCertificate:
        common_name = charger.config.certificate_cn or charger.id
        organization = charger.configuration.get("CpoName") or ""
        return call.SignCertificate(csr=charger.security.store.new_csr(common_name, organization))

    return PendingCall("SignCertificate", build)


# --- certificates ----------------------------------------------------------------------------


def certificate_signed(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.CertificateSigned:
    """Accepted when the chain is for the last CSR's key (see the module docstring)."""
    chain = payload["certificateChain"]
    limit = charger.configuration.get_int("CertificateSignedMaxChainSize", 10000)
    problem = "longer than CertificateSignedMaxChainSize" if len(chain) > limit else None
    problem = problem or charger.security.store.accept_chain(chain, _now(charger))
    if problem is not None:
        charger.security_event("InvalidChargePointCertificate", problem)  # A02.FR.07
        return call_result.CertificateSigned(status=enums.CertificateSignedStatus.rejected)
    charger.security_event("ReconfigurationOfSecurityParameters", "new charge point certificate")
    return call_result.CertificateSigned(status=enums.CertificateSignedStatus.accepted)


def install_certificate(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.InstallCertificate:
    """Install a root certificate (M05)."""
    use = payload["certificateType"]
    status = charger.security.store.install(use, payload["certificate"], _now(charger))
    if status == "Accepted":
        charger.security_event("ReconfigurationOfSecurityParameters", f"{use} installed")
    return call_result.InstallCertificate(status=enums.CertificateStatus(status))


def get_installed_certificate_ids(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.GetInstalledCertificateIds:
    """The hash data of the installed certificates of that type; NotFound when none (M03)."""
    found = charger.security.store.hash_data(payload["certificateType"])
    status = "Accepted" if found else "NotFound"
    return call_result.GetInstalledCertificateIds(
        status=enums.GetInstalledCertificateStatus(status), certificate_hash_data=found or None
    )


def delete_certificate(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.DeleteCertificate:
    """Delete an installed certificate (M04)."""
    status = charger.security.store.delete(payload["certificateHashData"])
    if status == "Accepted":
        charger.security_event("ReconfigurationOfSecurityParameters", "certificate deleted")
    return call_result.DeleteCertificate(status=enums.DeleteCertificateStatus(status))


# --- log upload ------------------------------------------------------------------------------


def _diagnostics(charger: AnsweringCharger) -> str:
    config = charger.config
    lines = [
        f"GridLink simulator diagnostics of {charger.id} at {_now(charger).isoformat()}",
        f"vendor {config.vendor}, model {config.model}, firmware {config.firmware}",
    ]
    for connector in charger.connectors:
        lines.append(
            f"connector {connector.id}: {connector.status}, {connector.phase.name.lower()}, "
            f"transaction {connector.transaction_id}, meter {connector.meter_wh} Wh"
        )
    known, _ = charger.configuration.report(None)
    lines.extend(f"{k['key']} = {k['value']}" for k in known if k["value"] is not None)
    return "".join(f"{line}\n" for line in lines)


def get_log(charger: AnsweringCharger, payload: dict[str, Any], now: float) -> call_result.GetLog:
    """Accepted with a filename, then the upload (see the module docstring)."""
    location = payload["log"]["remoteLocation"]
    if urlsplit(location).scheme.lower() not in TRANSFER_SCHEMES:
        return call_result.GetLog(status=enums.LogStatus.rejected)
    security = charger.security
    status = (
        enums.LogStatus.accepted
        if security.log_upload is None
        else (enums.LogStatus.accepted_canceled)
    )
    log_type, request_id = payload["logType"], payload["requestId"]
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", charger.id)
    filename = f"{safe_id}-{log_type}-{request_id}.log"[-255:]
    if log_type == "SecurityLog":
        parameters = payload["log"]
        body = security.log.text(
            _parse_time(parameters.get("oldestTimestamp")),
            _parse_time(parameters.get("latestTimestamp")),
        )
    else:
        body = _diagnostics(charger)
    url = location + quote(filename) if urlsplit(location).path.endswith("/") else location
    security.log_upload = request_id
    security.transfers.append(
        Transfer(
            UPLOAD,
            url,
            request_id,
            body=body.encode(),
            retries=payload.get("retries") or 0,
            retry_interval_s=payload.get("retryInterval") or 0,
        )
    )
    return call_result.GetLog(status=status, filename=filename)


# --- signed firmware -------------------------------------------------------------------------


def _signing_certificate_problem(charger: AnsweringCharger, pem: str) -> str | None:
    try:
        certificate = certs.load_certificates(pem)[0]
    except ValueError:
        return "signing certificate is not PEM"
    if not certs.is_current(certificate, _now(charger)):
        return "signing certificate not valid now"
    roots = charger.security.store.roots(MANUFACTURER_ROOT)
    if roots and not any(r == certificate or certs.issued_by(certificate, r) for r in roots):
        return "signing certificate not issued by a ManufacturerRootCertificate"
    return None


def signed_update_firmware(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.SignedUpdateFirmware:
    """Check the signing certificate, then download (see the module docstring)."""
    firmware = payload["firmware"]
    problem = _signing_certificate_problem(charger, firmware["signingCertificate"])
    if problem is not None:
        charger.security_event("InvalidFirmwareSigningCertificate", problem)  # L01.FR.02
        return call_result.SignedUpdateFirmware(
            status=enums.UpdateFirmwareStatus.invalid_certificate
        )
    if urlsplit(firmware["location"]).scheme.lower() not in TRANSFER_SCHEMES:
        return call_result.SignedUpdateFirmware(status=enums.UpdateFirmwareStatus.rejected)
    security = charger.security
    status = (
        enums.UpdateFirmwareStatus.accepted
        if security.firmware is None
        else (enums.UpdateFirmwareStatus.accepted_canceled)
    )
    request_id = payload["requestId"]
    security.firmware = FirmwareUpdate(
        request_id,
        certs.load_certificates(firmware["signingCertificate"])[0],
        firmware.get("signature") or "",
    )
    retrieve = _parse_time(firmware["retrieveDateTime"])
    delay = max(0.0, retrieve.timestamp() - charger.wall_clock()) if retrieve else 0.0
    if delay > 0:
        charger.enqueue(_firmware_status(charger, "DownloadScheduled", request_id))
    security.transfers.append(
        Transfer(
            DOWNLOAD,
            firmware["location"],
            request_id,
            delay_s=delay,
            retries=payload.get("retries") or 0,
            retry_interval_s=payload.get("retryInterval") or 0,
        )
    )
    return call_result.SignedUpdateFirmware(status=status)


# --- what the driver reports about transfers -----------------------------------------------


def transfer_started(charger: AnsweringCharger, transfer: Transfer) -> None:
    """The driver started ``transfer``: Uploading or Downloading (unless it was superseded)."""
    security = charger.security
    if transfer.kind == UPLOAD and security.log_upload == transfer.request_id:
        charger.enqueue(_log_status("Uploading", transfer.request_id))
    firmware = security.firmware
    if transfer.kind == DOWNLOAD and firmware and firmware.request_id == transfer.request_id:
        charger.enqueue(_firmware_status(charger, "Downloading", transfer.request_id))


def transfer_done(charger: AnsweringCharger, transfer: Transfer, outcome: TransferOutcome) -> None:
    """``transfer`` ended: the notifications that follow (unless it was superseded)."""
    security = charger.security
    request_id = transfer.request_id
    if transfer.kind == UPLOAD:
        if security.log_upload == request_id:
            security.log_upload = None
            charger.enqueue(_log_status("Uploaded" if outcome.ok else "UploadFailure", request_id))
        return
    firmware = security.firmware
    if firmware is None or firmware.request_id != request_id:
        return
    security.firmware = None
    if not outcome.ok:
        charger.enqueue(_firmware_status(charger, "DownloadFailed", request_id))
        return
    charger.enqueue(_firmware_status(charger, "Downloaded", request_id))
    if not certs.verify_signature(firmware.signing_certificate, outcome.data, firmware.signature):
        charger.enqueue(_firmware_status(charger, "InvalidSignature", request_id))
        charger.security_event("InvalidFirmwareSignature", f"requestId {request_id}")
        return
    for status in ("SignatureVerified", "Installing", "Installed"):
        charger.enqueue(_firmware_status(charger, status, request_id))
    charger.security_event("FirmwareUpdated", f"requestId {request_id}")


# --- ExtendedTriggerMessage ----------------------------------------------------------------


def extended_trigger_message(
    charger: AnsweringCharger, payload: dict[str, Any], now: float
) -> call_result.ExtendedTriggerMessage:
    """Accept and queue the requested message (see the module docstring)."""
    requested = payload["requestedMessage"]
    connector_id = payload.get("connectorId")
    if connector_id is not None and charger.script.connector(connector_id) is None:
        return call_result.ExtendedTriggerMessage(status=enums.TriggerMessageStatus.rejected)
    security = charger.security
    if requested == "LogStatusNotification":
        uploading = security.log_upload
        charger.enqueue(_log_status("Uploading" if uploading is not None else "Idle", uploading))
    elif requested == "FirmwareStatusNotification":
        last = security.firmware_status
        if last is None or last[0] == "Installed":
            charger.enqueue(_firmware_status(charger, "Idle", None))
        else:
            charger.enqueue(_firmware_status(charger, *last))
    elif requested == "SignChargePointCertificate":
        if not charger.configuration.get("CpoName"):
            return call_result.ExtendedTriggerMessage(status=enums.TriggerMessageStatus.rejected)
        charger.enqueue(sign_certificate_call(charger))
    elif not queue_triggered(charger, requested, connector_id):
        return call_result.ExtendedTriggerMessage(status=enums.TriggerMessageStatus.not_implemented)
    return call_result.ExtendedTriggerMessage(status=enums.TriggerMessageStatus.accepted)


HANDLERS: dict[str, Handler] = {
    "CertificateSigned": certificate_signed,
    "DeleteCertificate": delete_certificate,
    "ExtendedTriggerMessage": extended_trigger_message,
    "GetInstalledCertificateIds": get_installed_certificate_ids,
    "GetLog": get_log,
    "InstallCertificate": install_certificate,
    "SignedUpdateFirmware": signed_update_firmware,
}

__all__ = [
    "HANDLERS",
    "TRANSFER_SCHEMES",
    "queue_security_event",
    "sign_certificate_call",
    "transfer_done",
    "transfer_started",
]
