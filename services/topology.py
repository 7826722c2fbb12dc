"""The RabbitMQ topology as declared values: exchanges, queues, bindings, dead-lettering.

Every name starts with the namespace (``GRIDLINK_NAMESPACE``, default ``gridlink``)::

    charger ─ws─> gateway pod ──publish rk "call.<Action>"──> {ns}.calls (topic)
                                                            ├─> {ns}.authz         (quorum)
                                                            ├─> {ns}.transactions  (quorum)
                                                            └─> {ns}.commands      (quorum)
    services ──publish rk "<stationId>"──> {ns}.stations (direct) ──> {ns}.gateway.<pod>
                                              (binding per connected charger, exclusive queue)
    requesters ──rk "command"──> {ns}.commands.in (direct) ──> {ns}.commands
    services, gateways ──rk "health.*", "station.*", "transaction.*", "command.*"──>
        {ns}.events (topic) ──"transaction.*", "station.*"──> {ns}.commands
    rejected / over-delivered messages ──> {ns}.dead-letter (fanout) ──> {ns}.dead-letter

Charger answers to CSMS calls travel on ``{ns}.calls`` with routing key ``outcome.<Action>``;
the handshake asks authz with routing key ``rpc.connect`` and a ``reply_to`` of the pod queue;
that question and Authorize go to their own non-durable queue ``{ns}.authz.rpc`` (never behind
charger calls, no Raft write).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.settings import Settings

DELIVERY_LIMIT = 10  # a message that failed this often is dead-lettered, never redelivered forever

AUTHZ_KEYS = (
    "call.BootNotification",
    "call.Heartbeat",
    "call.DataTransfer",
)
ADMISSION_KEY = "rpc.connect"  # handshake admission: its own queue, never behind charger calls
# Questions someone waits on and that change nothing: authz's fast lane ({ns}.authz.rpc).
AUTHZ_QUESTION_KEYS = (ADMISSION_KEY, "call.Authorize")
QUESTION_TTL_MS = 60_000  # nobody waits longer for an answer
TRANSACTION_KEYS = (
    "call.StartTransaction",
    "call.StopTransaction",
    "call.MeterValues",
    "call.StatusNotification",
)
COMMAND_KEYS = (
    "call.FirmwareStatusNotification",
    "call.DiagnosticsStatusNotification",
    "outcome.*",
)
COMMAND_EVENT_KEYS = ("transaction.*", "station.*")  # on the events exchange


def call_key(action: str) -> str:
    """Routing key of a charger CALL on the calls exchange."""
    return f"call.{action}"


def outcome_key(action: str) -> str:
    """Routing key of a charger's answer to a CSMS call."""
    return f"outcome.{action}"


@dataclass(frozen=True)
class ServiceQueue:
    name: str
    bindings: tuple[tuple[str, str], ...]  # (exchange, routing key)
    retired: tuple[tuple[str, str], ...] = ()  # bindings of earlier releases, removed


@dataclass(frozen=True)
class Topology:
    """All names for one namespace."""

    namespace: str
    quorum: bool = True
    calls: str = field(init=False)
    stations: str = field(init=False)
    commands_in: str = field(init=False)
    events: str = field(init=False)
    dead_letter: str = field(init=False)

    def __post_init__(self) -> None:
        ns = self.namespace
        object.__setattr__(self, "calls", f"{ns}.calls")
        object.__setattr__(self, "stations", f"{ns}.stations")
        object.__setattr__(self, "commands_in", f"{ns}.commands.in")
        object.__setattr__(self, "events", f"{ns}.events")
        object.__setattr__(self, "dead_letter", f"{ns}.dead-letter")

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(settings.namespace, settings.quorum_queues)

    def service_queue(self, service: str) -> ServiceQueue:
        """The durable work queue of ``authz``, ``transactions`` or ``commands``."""
        keys = {"authz": AUTHZ_KEYS, "transactions": TRANSACTION_KEYS, "commands": COMMAND_KEYS}
        bindings = tuple((self.calls, key) for key in keys[service])
        if service == "commands":
            bindings += ((self.commands_in, "command"),)
            bindings += tuple((self.events, key) for key in COMMAND_EVENT_KEYS)
        retired = (tuple((self.calls, key) for key in AUTHZ_QUESTION_KEYS)
                   if service == "authz" else ())
        return ServiceQueue(f"{self.namespace}.{service}", bindings, retired)

    def rpc_queue(self, service: str) -> ServiceQueue | None:
        """A service's queue for questions someone waits on and that change nothing (authz:
        handshake admission and Authorize).

        Separate from the work queue so a handshake never waits behind thousands of boots
        in a storm; a plain non-durable queue shared by the replicas (no Raft log write per
        message), because a question whose asker gave up is worth nothing after a broker
        restart, and the charger simply asks again."""
        if service != "authz":
            return None
        return ServiceQueue(f"{self.namespace}.authz.rpc",
                            tuple((self.calls, key) for key in AUTHZ_QUESTION_KEYS))

    def gateway_queue(self, instance: str) -> str:
        return f"{self.namespace}.gateway.{instance}"

    def queue_arguments(self) -> dict[str, object]:
        args: dict[str, object] = {"x-dead-letter-exchange": self.dead_letter}
        if self.quorum:
            args["x-queue-type"] = "quorum"
            args["x-delivery-limit"] = DELIVERY_LIMIT
        return args

    def all_queues(self) -> list[str]:
        services = ("authz", "transactions", "commands")
        rpc = [q.name for q in map(self.rpc_queue, services) if q is not None]
        return [self.service_queue(s).name for s in services] + rpc + [self.dead_letter]

    def all_exchanges(self) -> list[str]:
        return [self.calls, self.stations, self.commands_in, self.events, self.dead_letter]
