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


def test_security_fields_select_the_profile_and_per_charger_files() -> None:
    plain = FleetPlan(url="ws://x/ocpp", chargers=2)
    assert plain.security_profile == 0 and not plain.tls and plain.client_files(0) is None
    assert FleetPlan(url="ws://x/ocpp", chargers=2, password="p").security_profile == 1
    secure = FleetPlan(url="wss://x/ocpp", chargers=12, password="pw-{id}-{n}", id_prefix="CP")
    assert secure.tls and secure.security_profile == 2
    assert secure.charger_config(2).authorization_key == "pw-CP03-03"
    by_file = secure.charger_config(2, passwords={"CP03": "from-file"})
    assert by_file.authorization_key == "from-file" and by_file.security_profile == 2
    templates = FleetPlan(
        url="wss://x/ocpp", chargers=2, cert_file="/c/{id}.crt", key_file="/k/{n}.key"
    )
    assert templates.security_profile == 3
    assert templates.client_files(1) == ("/c/SIM2.crt", "/k/2.key")
    folder = FleetPlan(url="wss://x/ocpp", chargers=2, cert_dir="/certs", organization="CPO")
    assert folder.client_files(0) == ("/certs/SIM1.pem", "/certs/SIM1.key")
    config = folder.charger_config(0, central_system_roots="PEM")
    assert (config.cpo_name, config.certificate_cn, config.central_system_roots) == (
        "CPO",
        "SIM1",
        "PEM",
    )
    named = FleetPlan(url="wss://x/ocpp", chargers=2, certificate_cn="serial-{n}")
    assert named.charger_config(1).certificate_cn == "serial-2"


def test_split_carries_the_security_fields_to_every_worker() -> None:
    plan = FleetPlan(
        url="wss://x/ocpp",
        chargers=4,
        password="p-{id}",
        password_file="/p.txt",
        ca_file="/ca.pem",
        cert_dir="/certs",
        organization="CPO",
        certificate_cn="{id}",
    )
    for part in split_plan(plan, 2):
        assert (
            part.password,
            part.password_file,
            part.ca_file,
            part.insecure,
            part.cert_dir,
            part.organization,
            part.certificate_cn,
        ) == ("p-{id}", "/p.txt", "/ca.pem", False, "/certs", "CPO", "{id}")
    second = split_plan(plan, 2)[1]
    assert second.client_files(0) == ("/certs/SIM3.pem", "/certs/SIM3.key")
