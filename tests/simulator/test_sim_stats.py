"""Latency recording, percentiles, the report and its table."""

from __future__ import annotations

import math
import pickle

import pytest

from simulator.stats import Stats, percentile, render_table


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    assert percentile([1.0, 2.0], 50) == 1.0


def _stats() -> Stats:
    stats = Stats(expected_chargers=2, started_at=10.0)
    for ms in range(1, 101):
        stats.call_sent("Authorize")
        stats.call_done("Authorize", ms / 1000.0, "ok")
    stats.call_sent("Authorize")
    stats.call_done("Authorize", 0.5, "InternalError")
    stats.call_sent("Authorize")
    stats.call_done("Authorize", 30.0, "timeout")
    stats.call_sent("Heartbeat")
    stats.call_done("Heartbeat", 0.001, "invalid")
    stats.boot_status("A", "Pending", 10.5)
    stats.boot_status("A", "Accepted", 11.0)
    stats.boot_status("B", "Accepted", 12.25)
    stats.connected()
    stats.connect_failed("connection refused")
    stats.csms_call("Reset", "Accepted")
    return stats


def test_report_counts_outcomes_and_percentiles() -> None:
    report = _stats().report(profile="storm")
    authorize = report["actions"]["Authorize"]
    assert (authorize["sent"], authorize["ok"], authorize["timeouts"]) == (102, 100, 1)
    assert authorize["errors"] == {"InternalError": 1}
    # The CALLERROR's latency counts (it was answered); the timeout's does not.
    assert authorize["p50_ms"] == pytest.approx(51.0)
    assert authorize["max_ms"] == pytest.approx(500.0)
    assert report["actions"]["Heartbeat"]["invalid"] == 1
    assert report["boot"] == {
        "answers": {"Accepted": 2, "Pending": 1},
        "chargers_accepted": 2,
        "first_accepted_s": 1.0,
        "all_accepted_s": 2.25,
    }
    assert report["overall"]["errors"] == 2 and report["overall"]["timeouts"] == 1
    assert report["connections"]["connect_failures"] == {"connection refused": 1}
    assert report["csms_calls"] == {"Reset": {"Accepted": 1}}
    assert report["profile"] == "storm"


def test_table_lists_actions_and_failures() -> None:
    table = render_table(_stats().report())
    assert table.splitlines()[0].split()[:2] == ["action", "sent"]
    assert any(line.startswith("Authorize") for line in table.splitlines())
    assert "CALLERRORs by code 2 (InternalError: 1, schema-invalid CALLRESULT: 1)" in table
    assert "all Accepted after 2.250 s" in table
    assert "timeouts 1" in table


def test_merge_keeps_percentiles_exact() -> None:
    one, two = Stats(expected_chargers=1), Stats(expected_chargers=1)
    for ms in range(1, 51):
        one.call_sent("MeterValues")
        one.call_done("MeterValues", ms / 1000.0, "ok")
    for ms in range(51, 101):
        two.call_sent("MeterValues")
        two.call_done("MeterValues", ms / 1000.0, "ok")
    one.boot_status("A", "Accepted", 1.0)
    two.boot_status("B", "Accepted", 3.0)
    merged = Stats()
    merged.merge(pickle.loads(pickle.dumps(one)))
    merged.merge(pickle.loads(pickle.dumps(two)))
    report = merged.report()
    assert report["actions"]["MeterValues"]["p90_ms"] == pytest.approx(90.0)
    assert report["chargers"] == 2
    assert report["boot"]["chargers_accepted"] == 2
    assert merged.all_accepted_at == 3.0


def test_window_reports_only_what_happened_after_the_mark() -> None:
    stats = Stats()
    for ms in (100, 200):
        stats.call_sent("Authorize")
        stats.call_done("Authorize", ms / 1000.0, "ok")
    mark = stats.mark()
    for ms in (1, 2, 3):
        stats.call_sent("Authorize")
        stats.call_done("Authorize", ms / 1000.0, "ok")
    stats.call_sent("MeterValues")
    stats.call_done("MeterValues", 0.004, "InternalError")
    stats.call_sent("MeterValues")
    stats.call_done("MeterValues", 30.0, "timeout")
    window = stats.window(mark)
    assert window["actions"]["Authorize"]["answered"] == 3
    assert window["actions"]["Authorize"]["max_ms"] == pytest.approx(3.0)
    assert window["actions"]["MeterValues"]["errors"] == 1
    assert window["overall"]["timeouts"] == 1
    assert window["overall"]["answered"] == 4 and window["overall"]["sent"] == 5


def test_file_transfers_are_counted_merged_and_shown() -> None:
    one, two = Stats(), Stats()
    one.transfer_done("upload", "ok")
    two.transfer_done("upload", "ok")
    two.transfer_done("download", "HTTP 404")
    merged = Stats()
    merged.merge(pickle.loads(pickle.dumps(one)))
    merged.merge(pickle.loads(pickle.dumps(two)))
    report = merged.report()
    assert report["transfers"] == {"download": {"HTTP 404": 1}, "upload": {"ok": 2}}
    table = render_table(report)
    assert "file uploads (ok: 2)" in table and "file downloads (HTTP 404: 1)" in table
