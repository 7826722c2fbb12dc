"""The broker users: what each service consumes is what its router and routes bind, the
permission regexes are literal names, passwords are stored only as RabbitMQ's hashes."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout

import pytest

from authz.service import SPEC as AUTHZ
from commands.service import SPEC as COMMANDS
from gridlink import broker_users, components
from services.runtime import ServiceSpec
from services.topology import Resources, Topology
from tests.helpers import built
from transactions.service import SPEC as TRANSACTIONS

SPECS: tuple[ServiceSpec, ...] = (AUTHZ, TRANSACTIONS, COMMANDS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_a_service_reads_exactly_the_exchanges_its_queues_are_bound_to(
        spec: ServiceSpec) -> None:
    topology = Topology("ns")
    service = built(spec)
    bound = {topology.exchange(s.exchange) for s in (*service.subscriptions(), *service.retired)}
    declared = broker_users.SERVICES[spec.name].consumes
    assert {topology.exchange(role) for role in declared} == bound


def test_every_component_has_a_user_and_the_cli_one_too() -> None:
    assert set(broker_users.SERVICES) == set(components.SERVICES)
    assert set(broker_users.USERS) == {*components.NAMES, "cli"}
    assert len(set(broker_users.USERS.values())) == len(broker_users.USERS)


@pytest.mark.parametrize("namespace", ["gridlink", "a.b-c_d", "x"])
def test_patterns_match_names_literally(namespace: str) -> None:
    t = Topology(namespace)
    pattern = Resources((t.calls,), (t.gateway_queue(""),)).pattern()
    assert re.search(pattern, t.calls) and re.search(pattern, t.gateway_queue("pod-1"))
    look_alikes = [t.calls + "x", "x" + t.calls, t.calls.replace(".", "X"),
                   t.gateway_queue(""), f"{namespace}.gatewayX1"]
    assert not [name for name in look_alikes if re.search(pattern, name)]
    assert Resources().pattern() == "^$" and not re.search("^$", t.calls)


def test_passwords_are_stored_as_salted_sha256() -> None:
    hashed = broker_users.password_hash("s3cret")
    assert broker_users.password_matches("s3cret", hashed)
    assert not broker_users.password_matches("s3cret!", hashed)
    assert broker_users.password_hash("s3cret") != hashed  # a new salt each time
    # RabbitMQ's documented example: salt 908D C60A, password "test12".
    assert broker_users.password_hash("test12", bytes.fromhex("908DC60A")) == (
        "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR")


def run(*argv: str, stdin: str = "") -> str:
    output = io.StringIO()
    with redirect_stdout(output):
        assert broker_users.main(list(argv), stdin=lambda: stdin) == 0
    return output.getvalue()


def test_definitions_for_production_hold_no_password_in_clear() -> None:
    passwords = {user: f"pw-{user}" for user in broker_users.USERS.values()}
    text = run("definitions", "--namespace", "prod", "--vhost", "v", stdin=json.dumps(passwords))
    document = json.loads(text)
    assert not any(password in text for password in passwords.values())
    for user in document["users"]:
        assert broker_users.password_matches(passwords[user["name"]], user["password_hash"])
        assert user["tags"] == []  # no administrator outside development
    assert {p["vhost"] for p in document["permissions"]} == {"v"}
    assert all("prod\\." in p["write"] or p["write"] == "^$" for p in document["permissions"])


def test_definitions_need_every_users_password() -> None:
    with pytest.raises(SystemExit):
        run("definitions", stdin=json.dumps({"gridlink-gateway": "x"}))


def test_rabbitmqctl_form_sets_each_users_permissions() -> None:
    lines = run("rabbitmqctl", "--namespace", "ns", "--vhost", "v").splitlines()
    users = [line.split()[4] for line in lines if line.startswith("rabbitmqctl set_permissions")]
    assert users == list(broker_users.USERS.values())
    assert [line for line in lines if "set_topic_permissions" in line] == [
        r"rabbitmqctl set_topic_permissions -p v gridlink-gateway ns.events '^$' "
        r"'^(health\.\*)$'",
        # the API's webhook worker binds {ns}.webhooks to the public events only
        r"rabbitmqctl set_topic_permissions -p v gridlink-api ns.events '^$' "
        r"'^(station\.connected|station\.disconnected|station\.booted|station\.status|"
        r"transaction\.started|transaction\.updated|transaction\.stopped|"
        r"command\.finished|security\.event)$'"]
