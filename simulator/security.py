"""A charger's security state, without I/O: its security log, its file transfers, its
certificates (:mod:`simulator.certificate_store`).

Security events (OCPP 1.6 Security Whitepaper ed. 2, A04 and section 8): every event goes
into the charger's security log (A04.FR.04, N01.FR.05: a rolling log of the last
:data:`LOG_SIZE`); those in :data:`SENT_EVENTS` are also sent as SecurityEventNotification
(A04.FR.01), queued until the charger is connected (A04.FR.02) and not queued twice.  Sent:
the critical events of section 8, and those a requirement makes the charger send or
"trigger" (L01.FR.02/03 for firmware, A00.FR.309/315 for TLS, A02.FR.07 for its own
certificate).  The others (a 401, new security parameters) are logged only.

File transfers: a GetLog or SignedUpdateFirmware leaves a :class:`Transfer` in
:attr:`SecurityState.transfers` for the driver to run (:mod:`simulator.transfers`: an
HTTP(S) PUT of the log, a GET of the firmware image); the driver says when it starts and how
it ended (:class:`TransferOutcome`), and the charger sends the status notifications that
follow (:mod:`simulator.security_calls`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from simulator.certificate_store import CertificateStore
from simulator.certificates import load_certificates
from simulator.charger_config import ChargerConfig

#: The critical security events of the whitepaper's section 8.
CRITICAL_EVENTS = frozenset(
    {
        "FirmwareUpdated",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "MemoryExhaustion",
        "TamperDetectionActivated",
    }
)

#: The events sent to the CSMS (see the module docstring); the rest are only logged.
SENT_EVENTS = CRITICAL_EVENTS | {
    "InvalidFirmwareSignature",
    "InvalidFirmwareSigningCertificate",
    "InvalidCentralSystemCertificate",
    "InvalidTLSVersion",
    "InvalidChargePointCertificate",
}

#: Entries the security log keeps (the oldest go first).
LOG_SIZE = 200

UPLOAD = "upload"  # GetLog: PUT the log file
DOWNLOAD = "download"  # SignedUpdateFirmware: GET the image


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One entry of the security log."""

    type: str
    timestamp: str  # OCPP dateTime
    tech_info: str | None = None


class SecurityLog:
    """The charger's rolling security log (its storage made at the first event: most
    chargers of a fleet never have one)."""

    def __init__(self, size: int = LOG_SIZE) -> None:
        self.size = size
        self._entries: deque[SecurityEvent] | None = None

    @property
    def entries(self) -> deque[SecurityEvent] | tuple[()]:
        """The events, oldest first."""
        return self._entries if self._entries is not None else ()

    def record(self, kind: str, timestamp: str, tech_info: str | None = None) -> SecurityEvent:
        """Add an event; return it."""
        event = SecurityEvent(kind, timestamp, tech_info)
        if self._entries is None:
            self._entries = deque(maxlen=self.size)
        self._entries.append(event)
        return event

    def text(self, oldest: datetime | None = None, latest: datetime | None = None) -> str:
        """The log as the file GetLog uploads: one line per event, ``oldest`` to ``latest``."""
        lines = []
        for event in self.entries:
            moment = datetime.fromisoformat(event.timestamp)
            if (oldest is None or moment >= oldest) and (latest is None or moment <= latest):
                lines.append(f"{event.timestamp} {event.type} {event.tech_info or ''}".rstrip())
        return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A file transfer for the driver to run: an upload (PUT ``body``) or a download (GET)."""

    kind: str  # UPLOAD or DOWNLOAD
    url: str
    request_id: int  # of the GetLog or SignedUpdateFirmware
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    delay_s: float = 0.0  # start this much later (retrieveDateTime)
    retries: int = 0  # further attempts after a failure
    retry_interval_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """How a transfer ended: ``ok`` with the downloaded ``data``, or the ``error``."""

    ok: bool
    data: bytes = b""
    error: str = ""


@dataclass(slots=True)
class FirmwareUpdate:
    """A SignedUpdateFirmware in progress: what its image must be signed with."""

    request_id: int
    signing_certificate: x509.Certificate
    signature: str


@dataclass
class SecurityState:
    """Everything security a charger keeps (see the module docstring)."""

    store: CertificateStore
    log: SecurityLog = field(default_factory=SecurityLog)
    transfers: list[Transfer] = field(default_factory=list)  # for the driver to take
    log_upload: int | None = None  # the requestId of the log being uploaded
    firmware: FirmwareUpdate | None = None
    firmware_status: tuple[str, int] | None = None  # last SignedFirmwareStatusNotification
    queued_events: set[str] = field(default_factory=set)  # queued, not yet sent

    @classmethod
    def for_charger(cls, config: ChargerConfig, max_certificates: int) -> SecurityState:
        """A charger's state at its start: its ``--ca-file`` roots installed."""
        roots = config.central_system_roots
        store = CertificateStore(
            config.charger_id, load_certificates(roots) if roots else (), max_certificates
        )
        return cls(store)

    def take_transfers(self) -> list[Transfer]:
        """The transfers the driver has not started yet (and forget them here)."""
        taken, self.transfers = self.transfers, []
        return taken


__all__ = [
    "CRITICAL_EVENTS",
    "DOWNLOAD",
    "LOG_SIZE",
    "SENT_EVENTS",
    "UPLOAD",
    "FirmwareUpdate",
    "SecurityEvent",
    "SecurityLog",
    "SecurityState",
    "Transfer",
    "TransferOutcome",
]
