"""The charging-session script: the CALLs of a session in order, early ends, jitter, mixes."""

from __future__ import annotations

from sim_helpers import Bench

from simulator.connectors import Phase


def test_session_script_runs_a_whole_transaction() -> None:
    bench = Bench(meter_values_per_session=3)
    bench.boot()
    actions = []
    for _ in range(12):
        frame = bench.step()
        assert frame is not None
        assert bench.step() is None  # one outstanding CALL at a time
        actions.append((frame[2], frame[3].get("status")))
        if frame[2] == "MeterValues":
            assert frame[3]["transactionId"] == 42
            sample = frame[3]["meterValue"][0]["sampledValue"][0]
            assert sample["measurand"] == "Energy.Active.Import.Register"
        if frame[2] == "StopTransaction":
            assert frame[3]["transactionId"] == 42 and frame[3]["meterStop"] == 750
        bench.reply(frame)
    assert actions == [
        ("Authorize", None),
        ("StatusNotification", "Preparing"),
        ("StartTransaction", None),
        ("StatusNotification", "Charging"),
        ("MeterValues", None),
        ("MeterValues", None),
        ("MeterValues", None),
        ("StopTransaction", None),
        ("StatusNotification", "Finishing"),
        ("StatusNotification", "Available"),
        ("Authorize", None),
        ("StatusNotification", "Preparing"),
    ]


def test_rejected_id_tag_does_not_start() -> None:
    bench = Bench()
    bench.boot()
    frame = bench.step()
    assert frame is not None
    bench.reply(frame, {"idTagInfo": {"status": "Invalid"}})
    assert bench.charger.connectors[0].phase is Phase.IDLE
    again = bench.step()
    assert again is not None and again[2] == "Authorize"


def test_deauthorized_start_is_stopped() -> None:
    bench = Bench()
    bench.boot()
    for _ in range(2):
        frame = bench.step()
        assert frame is not None
        bench.reply(frame)
    start = bench.step()
    assert start is not None and start[2] == "StartTransaction"
    bench.reply(start, {"transactionId": 9, "idTagInfo": {"status": "Blocked"}})
    stop = bench.step()
    assert stop is not None and stop[2] == "StopTransaction"
    assert stop[3]["reason"] == "DeAuthorized" and stop[3]["transactionId"] == 9


def test_authorize_and_heartbeat_scripts() -> None:
    bench = Bench(script="authorize")
    bench.boot()
    for _ in range(3):
        frame = bench.step()
        assert frame is not None and frame[2] == "Authorize"
        bench.reply(frame)
    bench = Bench(script="heartbeat")
    bench.boot()
    frame = bench.step()
    assert frame is not None and frame[2] == "Heartbeat"


def test_jitter_delays_first_sessions_and_varies_their_length() -> None:
    lengths = set()
    delays = set()
    for n in range(12):
        bench = Bench(charger_id=f"J{n}", jitter=True, meter_values_per_session=4)
        bench.boot()
        skipped = 0
        while (frame := bench.step()) is None:
            skipped += 1
        delays.add(skipped)
        meter_values = 0
        while frame[2] != "StopTransaction":
            meter_values += frame[2] == "MeterValues"
            bench.reply(frame)
            frame = bench.step()
            assert frame is not None
        lengths.add(meter_values)
    assert len(delays) > 3 and len(lengths) > 1
    assert all(2 <= m <= 6 for m in lengths)
