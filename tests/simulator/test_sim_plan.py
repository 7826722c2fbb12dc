"""Fleet plans: identities, id tags, URLs, splitting over processes; the jittered script."""

from __future__ import annotations

from sim_helpers import Bench

from simulator.fleet import FleetPlan, split_plan


def test_ids_tags_and_urls() -> None:
    plan = FleetPlan(url="ws://127.0.0.1:9000/ocpp/", chargers=120, id_prefix="CP/", id_tag="T{n}")
    assert plan.charger_id(0) == "CP/001" and plan.charger_id(119) == "CP/120"
    assert plan.id_tag_for(4) == "T005"
    assert plan.charger_url("CP/001") == "ws://127.0.0.1:9000/ocpp/CP%2F001"
    assert FleetPlan(url="ws://x/ocpp", chargers=3).id_tag_for(2) == "SIMTAG0001"


def test_split_keeps_ids_unique_and_rate_proportional() -> None:
    plan = FleetPlan(url="ws://x/ocpp", chargers=10, rate=100, source_addresses=("a", "b"))
    parts = split_plan(plan, 3)
    ids = [p.charger_id(i) for p in parts for i in range(p.chargers)]
    assert ids == [plan.charger_id(i) for i in range(10)]
    assert sum(p.rate for p in parts) == 100
    assert [p.source_addresses for p in parts] == [("a",), ("b",), ("a", "b")]


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
