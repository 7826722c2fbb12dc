"""The whole GridLink stack as separate processes, for fault injection (issue 13).

A :class:`Cluster` owns everything it runs, so that breaking it disturbs nothing else on
the machine:

- a private RabbitMQ node (:class:`tests.rabbitmq_node.RabbitNode`: its own ports, data
  directory and Erlang cookie; the machine's shared broker is never touched);
- the embedded database (SecantusDB) on a port of its own, restarted with its data
  directory when it dies (:class:`gridlink.database_keeper.EmbeddedDatabase`, as
  ``gridlink run all`` keeps it), run *without* ``--sync-on-commit`` so only GridLink's
  own write concern keeps answered writes;
- two replicas of each service and two gateways, each ``python -m <component>`` as its
  container runs it, kept running by a :class:`~tests.faults.supervisor.Supervisor`;
- HAProxy in front of the gateways (:mod:`tests.faults.haproxy`): the fleet connects there;
- the second replica of each service reaches RabbitMQ and MongoDB through TCP proxies the
  harness controls (:mod:`tests.faults.tcp_proxy`: pause, drop, delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from gridlink import components, embedded_db
from gridlink.database_keeper import EmbeddedDatabase
from tests.faults.haproxy import start_haproxy
from tests.faults.supervisor import Supervisor, Unit
from tests.faults.tcp_proxy import TcpProxy
from tests.processes import Process, Stack, free_port, wait_until
from tests.rabbitmq_node import RabbitNode

REPLICAS = 2
GATEWAYS = 2

#: Settings of every component in the harness (on top of tests/processes.py's Stack.env).
ENVIRONMENT = {
    "GRIDLINK_LOG_LEVEL": "WARNING",
    "GRIDLINK_DRAIN_BATCH_SIZE": "10",  # a rolling restart closes chargers 10 at a time
    "GRIDLINK_DRAIN_BATCH_INTERVAL_S": "0.5",
    "GRIDLINK_SHUTDOWN_GRACE_S": "20",
}


@dataclass(eq=False)
class Cluster:
    """Start with ``async with Cluster(directory) as cluster``; everything ends with it."""

    directory: Path
    replicas: int = REPLICAS
    gateway_count: int = GATEWAYS
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: RabbitNode | None = None
    database: EmbeddedDatabase | None = None
    stack: Stack | None = None
    haproxy: Process | None = None
    supervisor: Supervisor = field(default_factory=Supervisor)
    amqp_proxy: TcpProxy | None = None  # replica 2 of each service -> RabbitMQ
    mongo_proxy: TcpProxy | None = None  # replica 2 of each service -> MongoDB
    _keeper: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        logs = self.directory / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.broker = RabbitNode(self.directory / "rabbitmq")
        broker_started = asyncio.create_task(asyncio.to_thread(self.broker.start))
        self.database = EmbeddedDatabase(free_port(), str(self.directory / "db"),
                                         log_file=logs / "secantusd.log",
                                         sync_on_commit=False, first_backoff_s=0.2)
        await asyncio.to_thread(self.database.start)
        self._keeper = asyncio.create_task(self.database.keep())
        await broker_started
        self.amqp_proxy = TcpProxy("127.0.0.1", self.broker.amqp_port)
        self.mongo_proxy = TcpProxy("127.0.0.1", self.database.port)
        await self.amqp_proxy.start()
        await self.mongo_proxy.start()
        namespace = f"glfaults-{uuid.uuid4().hex[:6]}"
        self.stack = Stack(amqp_url=self.broker.amqp_url, mongo_url=self.database.url,
                           namespace=namespace, database="faults", logs=logs,
                           extra_env={**ENVIRONMENT, **self.extra_env})
        for component in components.SERVICES:
            for replica in range(1, self.replicas + 1):
                self._add(component, replica)
        await self.wait_ready(self.services)  # the service queues exist before a gateway
        for replica in range(1, self.gateway_count + 1):
            self._add("gateway", replica)
        await self.wait_ready(self.gateways)
        self.haproxy = start_haproxy(
            self.directory, [(u.name, u.port, u.metrics_port or u.port) for u in self.gateways])
        await wait_until([self.haproxy], "/readyz", timeout=30)  # a gateway's, through it

    def _add(self, component: str, replica: int) -> Unit:
        assert self.stack is not None
        port = free_port()
        changes: dict[str, object] = {"instance": f"{component}-{replica}"}
        metrics_port = None
        if component == "gateway":
            metrics_port = free_port()
            changes.update(gateway_port=port, http_port=metrics_port)
        else:
            changes["http_port"] = port
        if component != "gateway" and replica == 2:  # through the proxies
            assert self.broker is not None and self.amqp_proxy and self.mongo_proxy
            changes["amqp_url"] = self.broker.amqp_url.replace(
                f":{self.broker.amqp_port}/", f":{self.amqp_proxy.port}/")
            changes["mongo_url"] = embedded_db.url(self.mongo_proxy.port)
        if component == "commands":
            changes["files_port"] = self.stack.files_port if replica == 1 else free_port()
        unit = Unit(f"{component}-{replica}", component, [sys.executable, "-m", component],
                    self.stack.env(**changes), self.stack.logs / f"{component}-{replica}.log",
                    port, metrics_port)
        return self.supervisor.add(unit)

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self.haproxy is not None:
            self.haproxy.terminate()
            with contextlib.suppress(Exception):
                await self.haproxy.exit_code(10)
        if self.stack is not None and self.stack._client is not None:
            await self.stack._client.close()
        for proxy in (self.amqp_proxy, self.mongo_proxy):
            if proxy is not None:
                await proxy.stop()
        if self.database is not None:
            await self.database.stop()
        if self._keeper is not None:
            await asyncio.wait_for(self._keeper, 30)
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- what scenarios use ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where chargers connect: HAProxy."""
        assert self.haproxy is not None
        return f"ws://127.0.0.1:{self.haproxy.port}/ocpp"

    @property
    def units(self) -> list[Unit]:
        return list(self.supervisor.units.values())

    @property
    def services(self) -> list[Unit]:
        return [u for u in self.units if u.component != "gateway"]

    @property
    def gateways(self) -> list[Unit]:
        return [u for u in self.units if u.component == "gateway"]

    def unit(self, name: str) -> Unit:
        return self.supervisor.units[name]

    async def wait_ready(self, units: list[Unit] | None = None, timeout: float = 120.0) -> None:
        """Until every unit (all by default) answers /readyz 200."""
        processes = [u.process for u in (units if units is not None else self.units)]
        await wait_until([p for p in processes if p is not None], "/readyz",
                         port=lambda p: p.metrics_port or p.port, timeout=timeout)

    def db(self) -> AsyncDatabase[dict[str, Any]]:
        assert self.stack is not None
        return self.stack.db()
