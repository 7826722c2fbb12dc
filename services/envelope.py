"""The JSON messages on the bus (never pickle); the classes below are their reference.

Charger side (gateway <-> services), on the calls exchange and the stations exchange:

- :class:`ChargerCall`   gateway -> service, a validated CALL from a charger
- :class:`CallReply`     service -> gateway (rk = station id), the CALLRESULT or CALLERROR
- :class:`CsmsCall`      commands -> gateway (rk = station id), a call to send to the charger
- :class:`CallOutcome`   gateway -> commands, the charger's answer (or timeout / closed)
- :class:`Takeover`      gateway -> gateways (rk = station id), "I hold this station now"
- :class:`ConnectBatch` / :class:`ConnectDecisions`  handshake admission (rpc.connect): the
  handshakes a gateway received within a few milliseconds, asked and answered in one message
- :class:`HealthReport`  service -> gateways (events, rk ``health.<service>``)
- :class:`StationSeen`   gateway -> authz (calls, rk ``seen``): a station was heard from
  (a Heartbeat the gateway answered itself); authz moves its ``last_seen``
- :class:`StationConnection`  gateway -> authz (calls, rk ``connection``): a charger's
  WebSocket opened or closed on a pod; authz publishes ``station.connected|disconnected``

Public contract for other teams: :class:`CommandRequest` in, :class:`CommandResult` out
(re-exported by the ``gridlink`` package with :func:`gridlink.send_command`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class ChargerCall(_Message):
    kind: Literal["call"] = "call"
    station: str
    session: str
    unique_id: str
    action: str
    payload: dict[str, Any]
    received_at: datetime
    # True: the gateway already answered (the edge Heartbeat of an earlier release, which
    # published it as a call; today it publishes a StationSeen): no reply.
    answered: bool = False


class CallReply(_Message):
    kind: Literal["reply"] = "reply"
    station: str
    session: str
    unique_id: str
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None


class CsmsCall(_Message):
    kind: Literal["command"] = "command"
    command_id: str
    station: str
    action: str
    payload: dict[str, Any]
    timeout_s: float


class Takeover(_Message):
    """A new connection of ``station``: pods holding an older one close it — unless theirs
    met a higher security profile, which then takes the station back."""

    kind: Literal["takeover"] = "takeover"
    station: str
    session: str
    profile: int = 0  # the security profile the new connection met


StationMessage = Annotated[CallReply | CsmsCall | Takeover, Field(discriminator="kind")]
station_message = TypeAdapter(StationMessage)


OutcomeStatus = Literal["result", "callerror", "timeout", "closed", "invalid"]


class CallOutcome(_Message):
    command_id: str
    station: str
    action: str
    status: OutcomeStatus
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None
    at: datetime


class PeerCertificate(_Message):
    """What the gateway saw of a charger's client certificate (verified by the TLS handshake
    against the client CA, or by a trusted TLS-terminating proxy)."""

    common_name: str | None = None
    organizations: list[str] = Field(default_factory=list)
    serial: str = ""
    fingerprint: str = ""
    not_after: datetime | None = None


class ConnectRequest(_Message):
    """One handshake to admit: the identity and the credentials the connection offers."""

    station: str
    password: str | None = None  # HTTP Basic whose user is the station (profiles 1 and 2)
    tls: bool = False  # over TLS, at the gateway or at a trusted proxy (profiles 2 and 3)
    certificate: PeerCertificate | None = None  # a verified client certificate (profile 3)
    peer: str | None = None  # the charger's address (rate limits, the log)


class ConnectDecision(_Message):
    """The answer: accepted (with the station's registration, for the boot gate, and the
    security profile the connection met), or refused with an HTTP status. ``reason`` is for
    the gateway's metric and log only; every refusal of credentials looks the same to the
    client."""

    accept: bool
    status: int = 200  # HTTP status for a refusal
    reason: str = ""
    registration: str | None = None  # Accepted | Pending | Rejected
    profile: int | None = None
    retry_after: int | None = None  # seconds, for a lockout (429)


class ConnectBatch(_Message):
    """Handshakes to admit, in one question (a reconnect storm is thousands per second)."""

    requests: list[ConnectRequest]
    partial: bool = False  # the asker takes decisions as they are made (with ``indices``)


class ConnectDecisions(_Message):
    """Decisions for a :class:`ConnectBatch`: one per request in the same order, or — when
    the batch said ``partial`` — some of them, ``indices`` saying for which requests."""

    decisions: list[ConnectDecision]
    indices: list[int] | None = None


class StationSeen(_Message):
    """A station was heard from at ``at`` (the gateway answered its Heartbeat at the edge):
    all a Heartbeat tells the CSMS, without running its handler."""

    kind: Literal["seen"] = "seen"
    station: str
    at: datetime


class StationConnection(_Message):
    """A connection of ``station`` (``session``) opened or closed on gateway ``gateway``
    (a fact: the gateway may not publish events, authz turns it into one)."""

    kind: Literal["connection"] = "connection"
    station: str
    session: str
    state: Literal["connected", "disconnected"]
    gateway: str
    at: datetime
    profile: int = 0  # the security profile the connection met
    code: int | None = None  # the WebSocket close code, for a disconnect


class HealthReport(_Message):
    service: str
    instance: str
    store_ok: bool
    at: datetime


# --- the public command contract -------------------------------------------------------

CommandStatus = Literal[
    "queued", "sent", "accepted", "rejected", "callerror", "timeout", "expired", "offline",
    "invalid",
]
FINAL_STATUSES: frozenset[str] = frozenset(
    {"accepted", "rejected", "callerror", "timeout", "expired", "offline", "invalid"}
)

#: A sent command left unanswered (its gateway vanished) is timed out by the commands
#: service this long after its ``timeout_s``, by a sweep that runs every
#: :data:`COMMAND_SWEEP_S`: a requester waits at least that long for its result.
COMMAND_DEADLINE_GRACE_S = 5.0
COMMAND_SWEEP_S = 1.0


class CommandRequest(_Message):
    """What another service publishes to ``{ns}.commands.in`` with routing key ``command``."""

    command_id: str = Field(min_length=1, max_length=128)
    station: str = Field(min_length=1)
    action: str
    payload: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0, le=3600)
    reply_to: str | None = None  # also taken from the AMQP reply_to property
    expires_at: datetime | None = None  # not sent after this moment: ends "expired"
    queue_if_offline: bool = False  # offline: wait for the station's next BootNotification


class CommandResult(_Message):
    """Published to the requester's ``reply_to`` and as event ``command.<status>``."""

    command_id: str
    station: str
    action: str
    status: CommandStatus
    response: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None
    at: datetime

    def failure_text(self) -> str:
        """One line saying why the command did not succeed (see :func:`failure_text`)."""
        return failure_text(self.status, self.error_code, self.error_description)


#: How a command that did not succeed is named in one line (the CLI prints these).
FAILURE_REASONS = {"invalid": "invalid command", "offline": "station offline",
                   "timeout": "timeout", "callerror": "CALLERROR"}


def failure_text(status: str, error_code: str | None = None,
                 error_description: str | None = None, *, reason: str | None = None) -> str:
    """``station offline: …``, ``CALLERROR: NotSupported …``, ``invalid command: …``:
    the reason for ``status`` (or ``reason``), then the error code and description."""
    said = FAILURE_REASONS.get(status, status) if reason is None else reason
    detail = " ".join(x for x in (error_code, error_description) if x)
    return f"{said}: {detail}".rstrip(": ")
