"""The simulator end to end against a tiny in-test central system built on the ocpp library."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from typing import Any

import pytest
from ocpp.v16 import call
from sim_csms import Csms, CsmsChargePoint

from simulator import cli
from simulator.fleet import END_ALL_ACCEPTED, END_DURATION, END_STOPPED, Fleet, Unreachable
from simulator.plan import FleetPlan

pytestmark = pytest.mark.timeout(30)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


async def test_realistic_run_reports_what_the_server_received(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Csms() as csms:
        status = await cli.run(
            _args(
                "--url",
                csms.url,
                "--chargers",
                "6",
                "--connectors",
                "2",
                "--duration",
                "2.5",
                "--rate",
                "60",
                "--ramp",
                "0.3",
                "--meter-values",
                "2",
                "--validate",
                "all",
                "--json",
            )
        )
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert status == 0, captured.err
    assert report["boot"]["chargers_accepted"] == 6
    assert report["connections"]["connects"] == 6
    assert report["overall"]["errors"] == 0 and report["overall"]["timeouts"] == 0
    # Every CALL the simulator counts as answered was received by the server, and vice versa.
    for action, row in report["actions"].items():
        assert row["sent"] == row["ok"] + row["unanswered_at_end"], action
        assert csms.received[action] >= row["ok"], action
        assert row["p50_ms"] is not None and row["p50_ms"] <= row["max_ms"]
    assert csms.received["BootNotification"] == 6
    assert csms.received["StatusNotification"] >= 6 * 3  # connectors 0, 1, 2 after boot
    assert csms.received["StopTransaction"] >= 6  # every charger finished a session
    # Paced, and never faster than the target (the bucket holds at most ~2 tokens of burst);
    # how close to the target a machine gets is a benchmark's question, not this test's.
    assert report["target_rate"] == 60 and 0 < report["achieved_rate"] <= 60 * 1.1
    assert report["end_reason"] == END_DURATION


async def test_storm_waits_until_all_are_accepted_through_pending() -> None:
    pending = {f"STORM{n:02d}" for n in range(0, 30, 3)}
    async with Csms(pending_first=pending) as csms:
        fleet = Fleet(
            FleetPlan(
                url=csms.url,
                chargers=30,
                profile="storm",
                duration_s=20,
                id_prefix="STORM",
                first_index=0,
                validate="all",
            )
        )
        await fleet.run()
        report = fleet.report()
    assert report["boot"]["chargers_accepted"] == 30
    assert report["boot"]["answers"] == {"Accepted": 30, "Pending": 10}
    # The Pending ones were Accepted on their retry 1 s later, before the run ended ...
    assert 1.0 <= report["boot"]["all_accepted_s"] <= report["duration_s"]
    # ... and the storm ended because everyone was Accepted, not because duration_s ran out.
    assert report["end_reason"] == END_ALL_ACCEPTED and fleet.end_reason == END_ALL_ACCEPTED
    assert csms.received["BootNotification"] == 40
    assert report["connections"]["connect_failures"] == {}


async def _exercise(cp: CsmsChargePoint) -> None:
    """CSMS-initiated calls, waiting for the charger's follow-up messages where there are any."""
    results: dict[str, Any] = {}
    cp.csms.results = results  # type: ignore[attr-defined]
    results["GetConfiguration"] = await cp.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    results["ChangeConfiguration"] = await cp.call(
        call.ChangeConfiguration(key="MeterValueSampleInterval", value="1")
    )
    started = asyncio.ensure_future(cp.wait_for("StartTransaction"))
    results["RemoteStart"] = await cp.call(
        call.RemoteStartTransaction(id_tag="REMOTE01", connector_id=1)
    )
    await started
    await cp.wait_for("MeterValues")  # sampled every MeterValueSampleInterval
    stopped = asyncio.ensure_future(cp.wait_for("StopTransaction"))
    results["RemoteStop"] = await cp.call(call.RemoteStopTransaction(transaction_id=1000))
    await stopped
    heartbeat = asyncio.ensure_future(cp.wait_for("Heartbeat"))
    results["Trigger"] = await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
    await heartbeat
    results["Unlock"] = await cp.call(call.UnlockConnector(connector_id=1))
    results["Availability"] = await cp.call(
        call.ChangeAvailability(connector_id=1, type="Operative")
    )
    results["DataTransfer"] = await cp.call(call.DataTransfer(vendor_id="Acme"))
    results["ClearCache"] = await cp.call(call.ClearCache())
    results["LocalListVersion"] = await cp.call(call.GetLocalListVersion())
    firmware = asyncio.ensure_future(cp.wait_for("FirmwareStatusNotification"))
    results["UpdateFirmware"] = await cp.call(
        call.UpdateFirmware(location="ftp://127.0.0.1/fw", retrieve_date="2026-01-01T00:00:00Z")
    )
    await firmware
    reboot = asyncio.ensure_future(cp.wait_for("BootNotification"))
    results["Reset"] = await cp.call(call.Reset(type="Soft"))
    await reboot


async def test_answers_csms_initiated_calls_and_acts_on_them() -> None:
    async with Csms(script=_exercise) as csms:
        fleet = Fleet(
            FleetPlan(
                url=csms.url,
                chargers=1,
                profile="idle",
                duration_s=25,
                ramp_s=0,
                id_prefix="CSMS",
                validate="all",
            )
        )
        run = asyncio.ensure_future(fleet.run())
        await asyncio.wait_for(csms.script_done.wait(), timeout=20)
        fleet.stop()
        await run
        report = fleet.report()
    assert csms.script_error is None, (repr(csms.script_error), csms.results, csms.received)  # type: ignore[attr-defined]
    results = csms.results  # type: ignore[attr-defined]
    assert results["GetConfiguration"].configuration_key[0]["key"] == "HeartbeatInterval"
    assert results["ChangeConfiguration"].status == "Accepted"
    assert results["RemoteStart"].status == "Accepted"
    assert results["RemoteStop"].status == "Accepted"
    assert results["Trigger"].status == "Accepted"
    assert results["Unlock"].status == "Unlocked"
    assert results["Availability"].status == "Accepted"
    assert results["DataTransfer"].status == "UnknownVendorId"
    assert results["ClearCache"].status == "Accepted"
    assert results["LocalListVersion"].list_version == 0
    assert results["Reset"].status == "Accepted"
    assert csms.connections["CSMS1"] == 2  # the Reset made it reconnect and boot again
    assert report["connections"]["disconnects"].get("reset") == 1
    assert report["csms_calls"]["RemoteStartTransaction"] == {"Accepted": 1}
    assert report["overall"]["errors"] == 0
    assert report["end_reason"] == END_STOPPED


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_url_is_one_line_and_exit_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"ws://127.0.0.1:{_closed_port()}/ocpp"
    status = await cli.run(_args("--url", url, "--chargers", "3", "--duration", "10"))
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "connection refused" in err and "Traceback" not in err
    status = await cli.run(_args("--url", "http://nowhere", "--chargers", "1"))
    assert status == 2


async def test_unknown_station_rejected_with_404() -> None:
    async with Csms() as csms:
        fleet = Fleet(FleetPlan(url=csms.url, chargers=2, id_prefix="UNKNOWN", duration_s=10))
        with pytest.raises(Unreachable, match="HTTP 404"):
            await fleet.run()
