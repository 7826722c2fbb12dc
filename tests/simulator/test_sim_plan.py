"""Fleet plans: identities, id tags, URLs, per-charger configs, splitting over processes."""

from __future__ import annotations

from simulator.plan import FleetPlan, split_plan


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


def test_charger_configs_follow_the_plan() -> None:
    plan = FleetPlan(url="ws://x/ocpp", chargers=3, connectors=2, id_tag="T{n}", script="heartbeat")
    config = plan.charger_config(1)
    assert (config.charger_id, config.id_tag, config.connectors) == ("SIM2", "T2", 2)
    assert config.script == "heartbeat" and config.jitter
    storm = FleetPlan(url="ws://x/ocpp", chargers=3, profile="storm", script="heartbeat")
    assert storm.charger_config(0).script == "session"  # only realistic paces another mix
    assert plan.source_address(0) is None
    spread = FleetPlan(url="ws://x/ocpp", chargers=3, source_addresses=("a", "b"))
    assert [spread.source_address(i) for i in range(3)] == ["a", "b", "a"]
