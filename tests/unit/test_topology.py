"""The declared topology: which routing keys reach which queue."""

from __future__ import annotations

from services.topology import Topology


def test_questions_take_authz_fast_lane_and_leave_the_work_queue() -> None:
    topology = Topology("ns")
    work = topology.service_queue("authz")
    rpc = topology.rpc_queue("authz")
    assert rpc is not None and rpc.name == "ns.authz.rpc"
    assert set(rpc.bindings) == {("ns.calls", "rpc.connect"), ("ns.calls", "call.Authorize")}
    assert not set(rpc.bindings) & set(work.bindings)
    assert set(work.retired) == set(rpc.bindings)  # removed from queues of earlier releases
    assert ("ns.calls", "call.BootNotification") in work.bindings
    assert topology.rpc_queue("transactions") is None
    assert topology.rpc_queue("commands") is None
    assert "ns.authz.rpc" in topology.all_queues()


def test_no_charger_action_reaches_two_queues() -> None:
    from services.ocpp16 import CHARGER_ACTIONS

    topology = Topology("ns")
    keys: list[str] = []
    for service in ("authz", "transactions", "commands"):
        keys += [key for _, key in topology.service_queue(service).bindings]
        rpc = topology.rpc_queue(service)
        keys += [key for _, key in rpc.bindings] if rpc else []
    assert all(keys.count(f"call.{action}") <= 1 for action in CHARGER_ACTIONS)
    bound = {action for action in CHARGER_ACTIONS if f"call.{action}" in keys}
    assert {"Authorize", "BootNotification", "StartTransaction", "MeterValues",
            "StatusNotification", "Heartbeat", "DataTransfer"} <= bound
