"""The simulated charger's protocol state, driven without sockets."""

from __future__ import annotations

import json

import pytest
from sim_helpers import ANSWERS, Bench

from simulator.charger import Phase, Registration
from simulator.frames import CALLRESULT, check


def test_boot_accepted_sends_status_per_connector_then_heartbeats() -> None:
    bench = Bench(connectors=2)
    boot = bench.connect()
    assert boot[0] == 2 and boot[2] == "BootNotification"
    assert boot[3]["chargePointVendor"] == "GridLink"
    calls = bench.drain(bench.reply(boot, {**ANSWERS["BootNotification"], "interval": 60}))
    assert [(c[2], c[3]["connectorId"], c[3]["status"]) for c in calls] == [
        ("StatusNotification", 0, "Available"),
        ("StatusNotification", 1, "Available"),
        ("StatusNotification", 2, "Available"),
    ]
    charger = bench.charger
    assert charger.registration is Registration.ACCEPTED
    assert charger.deadline() == pytest.approx(bench.now - 0.003 + 60, abs=0.01)
    bench.now = charger.deadline() or 0
    (heartbeat,) = [json.loads(f) for f in charger.timer(bench.now)]
    assert heartbeat[2] == "Heartbeat"
    assert bench.stats.boots["Accepted"] == 1
    assert bench.stats.all_accepted_at is not None


def test_pending_and_rejected_retry_after_the_interval() -> None:
    bench = Bench()
    boot = bench.connect()
    pending = {**ANSWERS["BootNotification"], "status": "Pending", "interval": 7}
    assert bench.reply(boot, pending) == []
    charger = bench.charger
    assert charger.registration is Registration.PENDING
    assert charger.step(bench.now) == []  # a Pending charger sends nothing else
    retry_at = charger.deadline()
    assert retry_at == pytest.approx(bench.now + 7)
    assert charger.timer(retry_at - 0.5) == []
    (again,) = [json.loads(f) for f in charger.timer(retry_at)]
    assert again[2] == "BootNotification" and again[1] != boot[1]
    bench.now = retry_at
    bench.reply(again, {**ANSWERS["BootNotification"], "status": "Rejected", "interval": 0})
    assert charger.registration is Registration.REJECTED
    assert charger.deadline() == pytest.approx(bench.now + charger.config.retry_interval_s)
    assert bench.stats.boots == {"Pending": 1, "Rejected": 1}


def test_timeout_and_callerror_are_recorded_and_the_charger_moves_on() -> None:
    bench = Bench(call_timeout_s=5.0)
    bench.boot()
    frame = bench.step()
    assert frame is not None
    deadline = bench.charger.deadline()
    assert deadline == pytest.approx(bench.now + 5.0)
    bench.now = deadline
    assert bench.charger.timer(deadline) == []
    assert bench.charger.outstanding is None
    late = bench.reply(frame)  # a late answer is not matched to anything
    assert late == [] and bench.stats.malformed_frames
    again = bench.step()
    assert again is not None
    bench.error(again, "InternalError")
    authorize = bench.stats.actions["Authorize"]
    assert (authorize.sent, authorize.timeouts, authorize.errors["InternalError"]) == (2, 1, 1)


def test_invalid_result_is_counted_not_trusted() -> None:
    bench = Bench()
    bench.boot()
    frame = bench.step()
    assert frame is not None
    bench.reply(frame, {"idTagInfo": {"status": "Maybe"}})
    assert bench.stats.actions["Authorize"].invalid == 1
    assert bench.charger.connectors[0].phase is Phase.IDLE


def test_disconnect_keeps_transaction_messages_for_the_next_connection() -> None:
    bench = Bench(meter_values_per_session=5)
    bench.boot()
    for _ in range(5):  # up to and including the first MeterValues
        frame = bench.step()
        assert frame is not None
        if frame[2] != "MeterValues":
            bench.reply(frame)
    assert frame[2] == "MeterValues"
    bench.charger.disconnected(bench.tick())
    assert bench.stats.actions["MeterValues"].disconnected == 1
    calls = bench.boot()
    assert [c[2] for c in calls][:2] == ["MeterValues", "StatusNotification"]
    assert calls[0][3]["transactionId"] == 42


def test_outgoing_frames_are_schema_valid() -> None:
    bench = Bench(connectors=2, meter_values_per_session=2)
    bench.boot()
    for _ in range(30):
        frame = bench.step()
        assert frame is not None
        bench.reply(frame)
    for frame in bench.sent:
        if frame[0] == 2:
            check(2, frame[2], frame[3])
    assert all(f[0] != CALLRESULT for f in bench.sent)
