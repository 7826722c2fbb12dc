"""The RabbitMQ topology as declared values: exchanges, queues, bindings, dead-lettering.

Every name starts with the namespace (``GRIDLINK_NAMESPACE``, default ``gridlink``)::

    charger ─ws─> gateway pod ──publish rk "call.<Action>"──> {ns}.calls (topic)
                                                            ├─> {ns}.authz         (quorum)
                                                            ├─> {ns}.transactions  (quorum)
                                                            └─> {ns}.commands      (quorum)
    services ──publish rk "<stationId>"──> {ns}.stations (direct) ──> {ns}.gateway.<pod>
                                              (binding per connected charger, exclusive queue)
    gateway pods ──takeover, rk "<stationId>"──> {ns}.takeovers (fanout) ──> {ns}.stations
    requesters ──rk "command"──> {ns}.commands.in (direct) ──> {ns}.commands
    services ──rk "health.*", "station.*", "transaction.*", "command.*", "security.*"──>
        {ns}.events (topic) ──the events a service listens to──> its queue
                            ──"health.*"──> each {ns}.gateway.<pod>
                            ──the public events subscribed to──> {ns}.webhooks (quorum; API)
    rejected / over-delivered messages ──> {ns}.dead-letter (fanout) ──> {ns}.dead-letter

Charger answers to CSMS calls travel on ``{ns}.calls`` with routing key ``outcome.<Action>``;
the handshake asks authz with routing key ``rpc.connect`` and a ``reply_to`` of the pod queue;
a Heartbeat answered at the gateway becomes a ``seen`` fact there (authz keeps last-seen), and
a connection opened or closed a ``connection`` fact (authz publishes it as an event).

Gateways publish takeovers ("I hold this station now") on ``{ns}.takeovers``, an exchange bound
to ``{ns}.stations``: so they reach the pod that holds the station, while the gateways, which
face the Internet, have no write permission on ``{ns}.stations`` (they cannot send a CSMS call
to a charger on another pod), and a gateway believes nothing but a takeover from there.

Each component has a broker user of its own, allowed exactly what it does (:class:`Grant`,
docs/security.md): the services declare the exchanges (:data:`PASSIVE_COMPONENTS` only check
them), the gateway publishes only to ``{ns}.calls`` and ``{ns}.takeovers`` and reads only its
own queue, a requester (``gridlink command``) publishes only to ``{ns}.commands.in`` and reads
only its reply queue.

Which keys reach a service's queues is never written down here: each service declares what
it consumes (:class:`Subscription` — its router's actions and its other routes), and
:meth:`Topology.service_queues` derives the bindings from that, so the topology, the router
and the runtime's dispatch (:func:`topic_matches`) cannot disagree. A service has a durable
work queue and, when it answers questions someone waits on and that change nothing (authz:
admission and Authorize), a non-durable ``{ns}.{service}.rpc`` fast lane, never behind
charger calls and without a Raft write per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from services.events import PUBLIC_EVENTS
from services.settings import Settings

DELIVERY_LIMIT = 10  # a message that failed this often is dead-lettered, never redelivered forever
QUESTION_TTL_MS = 60_000  # nobody waits longer for an answer on a fast lane

ADMISSION_KEY = "rpc.connect"  # handshake admission, on the calls exchange
COMMAND_KEY = "command"  # command requests, on the commands.in exchange
HEALTH_KEYS = "health.*"  # services' database health, on the events exchange
WEBHOOKS = "webhooks"  # the webhook worker's queue: {ns}.webhooks
SEEN_KEY = "seen"  # a station was heard from (edge Heartbeat), on the calls exchange
CONNECTION_KEY = "connection"  # a charger's connection opened or closed, on the calls exchange

#: Components that use the exchanges without declaring them: they hold no configure permission
#: on them and check them passively (which needs no permission). The services declare them.
PASSIVE_COMPONENTS = frozenset({"gateway", "cli", "api"})
#: The default exchange (routing key = queue name) as RabbitMQ's permissions name it: answering
#: a ``reply_to`` needs write on it, which reaches any queue of the virtual host.
DEFAULT_EXCHANGE = "amq.default"

Lane = Literal["work", "rpc"]
#: The exchanges a service may consume from, by role.
ExchangeRole = Literal["calls", "commands_in", "events"]


def call_key(action: str) -> str:
    """Routing key of a charger CALL on the calls exchange."""
    return f"call.{action}"


def outcome_key(action: str) -> str:
    """Routing key of a charger's answer to a CSMS call (``*``: any action)."""
    return f"outcome.{action}"


def topic_matches(pattern: str, key: str) -> bool:
    """Does routing key ``key`` match binding ``pattern`` (AMQP topic: ``*`` one word,
    ``#`` zero or more)?"""
    return _match(pattern.split("."), key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


@dataclass(frozen=True)
class Subscription:
    """Messages a service consumes: a binding key on one exchange, on one of its lanes."""

    exchange: ExchangeRole
    key: str
    lane: Lane = "work"


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
    takeovers: str = field(init=False)
    commands_in: str = field(init=False)
    events: str = field(init=False)
    dead_letter: str = field(init=False)

    def __post_init__(self) -> None:
        ns = self.namespace
        object.__setattr__(self, "calls", f"{ns}.calls")
        object.__setattr__(self, "stations", f"{ns}.stations")
        object.__setattr__(self, "takeovers", f"{ns}.takeovers")
        object.__setattr__(self, "commands_in", f"{ns}.commands.in")
        object.__setattr__(self, "events", f"{ns}.events")
        object.__setattr__(self, "dead_letter", f"{ns}.dead-letter")

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(settings.namespace, settings.quorum_queues)

    def exchange(self, role: ExchangeRole) -> str:
        """The exchange a subscription's role names."""
        return {"calls": self.calls, "commands_in": self.commands_in,
                "events": self.events}[role]

    def work_queue_name(self, service: str) -> str:
        return f"{self.namespace}.{service}"

    def rpc_queue_name(self, service: str) -> str:
        return f"{self.namespace}.{service}.rpc"

    def service_queues(self, service: str, subscriptions: Iterable[Subscription], *,
                       retired: Iterable[Subscription] = ()
                       ) -> tuple[ServiceQueue, ServiceQueue | None]:
        """The durable work queue of a service and its fast lane (None if it has none),
        bound to exactly what it subscribes to. A key on the fast lane is retired from the
        work queue, and so is each of ``retired`` (bindings a queue of an earlier release
        may still have)."""
        work: list[tuple[str, str]] = []
        rpc: list[tuple[str, str]] = []
        for subscription in subscriptions:
            binding = (self.exchange(subscription.exchange), subscription.key)
            (rpc if subscription.lane == "rpc" else work).append(binding)
        old = [(self.exchange(s.exchange), s.key) for s in retired]
        work_queue = ServiceQueue(self.work_queue_name(service), tuple(dict.fromkeys(work)),
                                  retired=tuple(dict.fromkeys(rpc + old)))
        if not rpc:
            return work_queue, None
        return work_queue, ServiceQueue(self.rpc_queue_name(service),
                                        tuple(dict.fromkeys(rpc)))

    def webhooks_queue(self) -> ServiceQueue:
        """``{ns}.webhooks``, durable, for the webhook worker of the API processes
        (``api/webhooks``), declared without bindings: the worker binds it to the public
        events (:data:`services.events.PUBLIC_EVENTS`) that active subscriptions want
        (``api/webhooks/bindings.py``)."""
        return ServiceQueue(self.work_queue_name(WEBHOOKS), ())

    def webhooks_grant(self) -> Grant:
        """What the webhook worker needs on the broker, beside what its process does:
        declare, bind (to ``{ns}.events``) and consume ``{ns}.webhooks``, whose dead-letter
        exchange needs write."""
        own = Resources((self.work_queue_name(WEBHOOKS),))
        return Grant(configure=own, write=Resources((self.dead_letter,)) | own,
                     read=Resources((self.events,)) | own,
                     topic_read={self.events: PUBLIC_EVENTS})

    def gateway_queue(self, instance: str) -> str:
        return f"{self.namespace}.gateway.{instance}"

    def requester_queue(self, tag: str, requester: str = "cli") -> str:
        """The exclusive reply queue of a command requester: ``gridlink command`` (``cli``)
        or the HTTP API (``api``: ``{ns}.api.reply.<tag>``)."""
        if requester == "cli":
            return f"{self.namespace}.cli.{tag}"
        return f"{self.namespace}.{requester}.reply.{tag}"

    def queue_arguments(self) -> dict[str, object]:
        args: dict[str, object] = {"x-dead-letter-exchange": self.dead_letter}
        if self.quorum:
            args["x-queue-type"] = "quorum"
            args["x-delivery-limit"] = DELIVERY_LIMIT
        return args

    def all_queues(self, services: Iterable[str]) -> list[str]:
        """Every queue these services may have declared, and the dead-letter queue."""
        names = [(self.work_queue_name(s), self.rpc_queue_name(s)) for s in services]
        return [name for pair in names for name in pair] + [self.dead_letter]

    def all_exchanges(self) -> list[str]:
        return [self.calls, self.stations, self.takeovers, self.commands_in, self.events,
                self.dead_letter]

    # --- broker permissions ---------------------------------------------------------------

    def gateway_grant(self) -> Grant:
        """A gateway: declares, binds and consumes its own queue (bound to ``{ns}.stations``
        per charger and to ``{ns}.events`` for health reports only); publishes charger calls,
        outcomes and admission questions to ``{ns}.calls`` and takeovers to ``{ns}.takeovers``.
        Nothing else: no ``{ns}.stations`` write, no service queue, no exchange declared."""
        own = Resources(prefixes=(self.gateway_queue(""),))
        return Grant(configure=own,
                     write=Resources((self.calls, self.takeovers)) | own,
                     read=Resources((self.stations, self.events)) | own,
                     topic_read={self.events: (HEALTH_KEYS,)})

    def requester_grant(self, requester: str = "cli") -> Grant:
        """A command requester (``gridlink command``, other teams' services; the HTTP API
        with ``requester="api"``): publishes to ``{ns}.commands.in``, declares and consumes
        its own reply queues (the commands service answers them through the default
        exchange). Nothing else: no service queue, no event."""
        own = Resources(prefixes=(self.requester_queue("", requester),))
        return Grant(configure=own, write=Resources((self.commands_in,)), read=own)

    def service_grant(self, service: str, *, consumes: Iterable[ExchangeRole],
                      answers_reply_to: bool) -> Grant:
        """A service: declares every exchange, the dead-letter queue and its own queues
        (whose dead-letter exchange needs write on it), binds its queues to the exchanges it
        ``consumes`` and ``{ns}.stations`` to ``{ns}.takeovers``; publishes replies and CSMS
        calls to ``{ns}.stations``, events and health to ``{ns}.events`` and, if it
        ``answers_reply_to`` (a question's or a command's ``reply_to``), to the default
        exchange."""
        own = Resources((self.work_queue_name(service), self.rpc_queue_name(service)))
        replies = (DEFAULT_EXCHANGE,) if answers_reply_to else ()
        sources = tuple(dict.fromkeys(self.exchange(role) for role in consumes))
        # {ns}.dead-letter names the dead-letter exchange and its queue.
        return Grant(
            configure=Resources((*self.all_exchanges(), self.dead_letter)) | own,
            write=Resources((self.stations, self.events, self.dead_letter, *replies)) | own,
            read=Resources((*sources, self.takeovers, self.dead_letter)) | own)


def _escape(name: str) -> str:
    """``name`` as a literal in a RabbitMQ (PCRE) permission regex."""
    return "".join(f"\\{c}" if c in r"\.^$*+?()[]{}|" else c for c in name)


@dataclass(frozen=True)
class Resources:
    """Exchanges and queues by name: exact ``names``, and every name that starts with one of
    ``prefixes`` and goes on (a gateway pod's queue, a requester's reply queue)."""

    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def __or__(self, other: Resources) -> Resources:
        return Resources(tuple(dict.fromkeys(self.names + other.names)),
                         tuple(dict.fromkeys(self.prefixes + other.prefixes)))

    def pattern(self) -> str:
        """The permission regex that matches exactly these names (``^$``: none)."""
        parts = [_escape(n) for n in self.names] + [f"{_escape(p)}.+" for p in self.prefixes]
        return f"^({'|'.join(parts)})$" if parts else "^$"


@dataclass(frozen=True)
class Grant:
    """What one component's broker user may do in its virtual host: RabbitMQ's configure
    (declare, delete), write (publish; a binding's queue) and read (consume; a binding's
    exchange) permissions, and on the topic exchanges in ``topic_read`` only those binding
    keys (RabbitMQ topic permissions)."""

    configure: Resources = Resources()
    write: Resources = Resources()
    read: Resources = Resources()
    topic_read: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __or__(self, other: Grant) -> Grant:
        """Both grants' permissions (a process that does what both do)."""
        topics = {exchange: tuple(dict.fromkeys(self.topic_read.get(exchange, ())
                                                + other.topic_read.get(exchange, ())))
                  for exchange in {**self.topic_read, **other.topic_read}}
        return Grant(self.configure | other.configure, self.write | other.write,
                     self.read | other.read, topics)

    def patterns(self) -> tuple[str, str, str]:
        """The configure, write and read regexes, in ``rabbitmqctl set_permissions`` order."""
        return self.configure.pattern(), self.write.pattern(), self.read.pattern()

    def topic_patterns(self) -> dict[str, tuple[str, str]]:
        """Per topic exchange: the write and read regexes (nothing published, only those
        binding keys), in ``rabbitmqctl set_topic_permissions`` order."""
        return {exchange: ("^$", Resources(keys).pattern())
                for exchange, keys in self.topic_read.items()}
