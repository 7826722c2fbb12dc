"""The topology: which routing keys reach which queue, derived from what each service
consumes."""

from __future__ import annotations

import pytest

from authz.service import SPEC as AUTHZ
from commands.service import SPEC as COMMANDS
from services.ocpp16 import CHARGER_ACTIONS
from services.runtime import ServiceSpec
from services.topology import Topology, topic_matches
from tests.helpers import built
from transactions.service import SPEC as TRANSACTIONS

SPECS: tuple[ServiceSpec, ...] = (AUTHZ, TRANSACTIONS, COMMANDS)


def queues(topology: Topology, spec: ServiceSpec):  # type: ignore[no-untyped-def]
    service = built(spec)
    return topology.service_queues(spec.name, service.subscriptions(), retired=service.retired)


def test_questions_take_authz_fast_lane_and_leave_the_work_queue() -> None:
    topology = Topology("ns")
    work, rpc = queues(topology, AUTHZ)
    assert rpc is not None and rpc.name == "ns.authz.rpc"
    assert set(rpc.bindings) == {("ns.calls", "rpc.connect"), ("ns.calls", "call.Authorize")}
    assert not set(rpc.bindings) & set(work.bindings)
    assert set(work.retired) == set(rpc.bindings)  # removed from queues of earlier releases
    assert ("ns.calls", "call.BootNotification") in work.bindings
    assert queues(topology, TRANSACTIONS)[1] is None
    assert queues(topology, COMMANDS)[1] is None
    assert "ns.authz.rpc" in topology.all_queues(spec.name for spec in SPECS)


def test_no_charger_action_reaches_two_queues() -> None:
    topology = Topology("ns")
    keys: list[str] = []
    for spec in SPECS:
        work, rpc = queues(topology, spec)
        keys += [key for _, key in work.bindings]
        keys += [key for _, key in rpc.bindings] if rpc else []
    assert all(keys.count(f"call.{action}") <= 1 for action in CHARGER_ACTIONS)
    bound = {action for action in CHARGER_ACTIONS if f"call.{action}" in keys}
    assert {"Authorize", "BootNotification", "StartTransaction", "MeterValues",
            "StatusNotification", "Heartbeat", "DataTransfer"} <= bound


def test_every_charger_action_has_exactly_one_consumer() -> None:
    topology = Topology("ns")
    bound = [key for spec in SPECS for queue in queues(topology, spec) if queue
             for _, key in queue.bindings if key.startswith("call.")]
    assert sorted(bound) == sorted(f"call.{action}" for action in CHARGER_ACTIONS)


def test_commands_queue_follows_the_features_events() -> None:
    work, _ = queues(Topology("ns"), COMMANDS)
    events = {key for exchange, key in work.bindings if exchange == "ns.events"}
    assert events == {"station.booted", "station.status", "transaction.started",
                      "transaction.stopped", "certificate.requested"}
    assert ("ns.commands.in", "command") in work.bindings
    assert ("ns.calls", "outcome.*") in work.bindings
    assert ("ns.calls", "call.FirmwareStatusNotification") in work.bindings
    assert ("ns.calls", "call.SignCertificate") in work.bindings
    # The wildcards of earlier releases are removed from existing queues.
    assert {("ns.events", "transaction.*"), ("ns.events", "station.*")} <= set(work.retired)


@pytest.mark.parametrize(("pattern", "key", "matches"), [
    ("call.Authorize", "call.Authorize", True),
    ("call.Authorize", "call.Authorized", False),
    ("outcome.*", "outcome.Reset", True),
    ("outcome.*", "outcome", False),
    ("outcome.*", "outcome.a.b", False),
    ("health.#", "health", True),
    ("health.#", "health.authz.x", True),
    ("#", "anything.at.all", True),
    ("*.started", "transaction.started", True),
    ("command", "command", True),
])
def test_topic_matching(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches
