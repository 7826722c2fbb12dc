"""One RabbitMQ user per component: the definitions the dev brokers load, each component's URL
and Secret, and permission regexes that match exactly the exchanges and queues it uses.

What each component may do is stated once more here, as Topology's names (``EXPECTED``), and
the regexes in deploy/rabbitmq/definitions.json must match exactly those among every name the
topology has; tests/integration/test_broker_permissions.py runs the components on a broker
with these users.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest

from gridlink import broker_users
from services.topology import DEFAULT_EXCHANGE, HEALTH_KEYS, Topology
from tests.deploy import sources
from tests.deploy.manifests import pod_spec
from tests.deploy.sources import COMPONENTS, SERVICES, by_kind

DEFINITIONS = sources.DEPLOY / "rabbitmq" / "definitions.json"
RABBITMQ_CONF = sources.DEPLOY / "rabbitmq" / "rabbitmq.conf"
T = Topology("gridlink")
VHOST = "gridlink"
GATEWAY_QUEUE = T.gateway_queue("gridlink-gateway-5d9c7b8f6-x2x7q")
CLI_QUEUE = T.requester_queue("0b7d2f4e-64b1-4c3e-9f0a-7e2d1c5b9a31")
# Who may do what, by name (the policy; docs/security.md has it as a table).
EXPECTED: dict[str, dict[str, set[str]]] = {
    "gateway": {"configure": {GATEWAY_QUEUE},
                "write": {T.calls, T.takeovers, GATEWAY_QUEUE},
                "read": {T.stations, T.events, GATEWAY_QUEUE}},
    "cli": {"configure": {CLI_QUEUE}, "write": {T.commands_in}, "read": {CLI_QUEUE}},
}
for _service, _reads, _answers in (("authz", {T.calls}, True),
                                   ("transactions", {T.calls}, False),
                                   ("commands", {T.calls, T.commands_in, T.events}, True)):
    _own = {T.work_queue_name(_service), T.rpc_queue_name(_service)}
    EXPECTED[_service] = {
        "configure": {*T.all_exchanges(), T.dead_letter} | _own,
        "write": {T.stations, T.events, T.dead_letter} | ({DEFAULT_EXCHANGE} if _answers else set())
        | _own,
        "read": {T.takeovers, T.dead_letter} | _reads | _own,
    }
# Every name there is, and some that only look like them.
UNIVERSE = {
    *T.all_exchanges(), *T.all_queues(SERVICES), GATEWAY_QUEUE, CLI_QUEUE, DEFAULT_EXCHANGE,
    "amq.topic", "amq.direct", "amq.gen-JzTY20BRgKO-HjmUJj0wLg", T.gateway_queue(""),
    T.requester_queue(""), "gridlink.stations.x", "gridlinkXcalls", "other.gridlink.calls",
    *Topology("gridlink2").all_exchanges(), Topology("gridlink2").gateway_queue("pod"),
}
COMPOSE_SERVICE = {"gateway": "gateway-1", "authz": "authz", "transactions": "transactions",
                   "commands": "commands", "cli": "cli"}


def definitions() -> dict:  # type: ignore[type-arg]
    return json.loads(DEFINITIONS.read_text())  # type: ignore[no-any-return]


def permissions(user: str) -> dict[str, str]:
    (found,) = [p for p in definitions()["permissions"] if p["user"] == user]
    assert found["vhost"] == VHOST
    return found  # type: ignore[no-any-return]


def check_login(url: str, component: str) -> None:
    """The URL logs in as the component's user, with the password the definitions hold."""
    parts = urlsplit(url)
    assert parts.username == broker_users.USERS[component], url
    (user,) = [u for u in definitions()["users"] if u["name"] == parts.username]
    assert user["hashing_algorithm"] == broker_users.HASHING_ALGORITHM
    assert parts.password is not None
    assert broker_users.password_matches(parts.password, user["password_hash"]), component
    assert parts.password.startswith("dev-only-"), "development credentials say so"
    assert parts.path == f"/{VHOST}"


def test_definitions_are_what_the_generator_writes() -> None:
    assert definitions() == broker_users.dev_definitions(), (
        "regenerate: python -m gridlink.broker_users definitions --dev "
        "> deploy/rabbitmq/definitions.json")
    assert [v["name"] for v in definitions()["vhosts"]] == [VHOST]


@pytest.mark.parametrize("component", sorted(EXPECTED))
def test_permissions_match_exactly_the_names_the_component_uses(component: str) -> None:
    granted = permissions(broker_users.USERS[component])
    for operation, names in EXPECTED[component].items():
        matched = {name for name in UNIVERSE if re.search(granted[operation], name)}
        assert matched == names, (component, operation)


def test_the_gateway_reaches_neither_stations_nor_service_queues() -> None:
    gateway = permissions(broker_users.USERS["gateway"])
    assert not re.search(gateway["write"], T.stations), "it could send CSMS calls to any charger"
    assert not re.search(gateway["write"], DEFAULT_EXCHANGE), "it could write into any queue"
    for queue in T.all_queues(SERVICES):
        assert not re.search(gateway["read"], queue)
    assert gateway["configure"] == f"^({re.escape(T.namespace)}\\.gateway\\..+)$"


def test_gateway_and_api_are_limited_to_binding_keys() -> None:
    """The gateway binds to health reports only; the API (its webhook worker) to the public
    events only: neither can follow GridLink's internal events."""
    topics = {t["user"]: t for t in definitions()["topic_permissions"]}
    assert set(topics) == {broker_users.USERS["gateway"], broker_users.USERS["api"]}
    keys = [HEALTH_KEYS, "#", "health.#", "transaction.*", "command.*", "station.booted",
            "transaction.started", "command.finished", "command.sent",
            "certificate.requested"]
    for user, allowed in ((broker_users.USERS["gateway"], [HEALTH_KEYS]),
                          (broker_users.USERS["api"], ["station.booted", "transaction.started",
                                                       "command.finished"])):
        topic = topics[user]
        assert (topic["vhost"], topic["exchange"], topic["write"]) == (VHOST, T.events, "^$")
        assert [key for key in keys if re.search(topic["read"], key)] == allowed


def test_an_administrator_only_for_the_development_management_ui() -> None:
    admins = [u["name"] for u in definitions()["users"] if u["tags"]]
    assert admins == [broker_users.DEV_ADMIN]
    assert {u["name"] for u in definitions()["users"]} == {
        *broker_users.USERS.values(), broker_users.DEV_ADMIN}
    (admin,) = [u for u in definitions()["users"] if u["name"] == broker_users.DEV_ADMIN]
    assert broker_users.password_matches(broker_users.DEV_ADMIN_PASSWORD, admin["password_hash"])


# --- where the brokers load them ----------------------------------------------------------


def loaded_from() -> str:
    (path,) = re.findall(r"^load_definitions\s*=\s*(\S+)$", RABBITMQ_CONF.read_text(), re.M)
    return path


def test_compose_broker_loads_the_definitions_and_has_no_default_user() -> None:
    assert sources.bind_mounts("rabbitmq")[loaded_from()] == DEFINITIONS
    rabbitmq = sources.compose_services()["rabbitmq"]
    assert not any(k.startswith("RABBITMQ_DEFAULT") for k in rabbitmq.get("environment", {}))


def test_dev_overlay_broker_loads_the_definitions_from_a_secret() -> None:
    (statefulset,) = [s for n, s in by_kind("overlays/dev", "StatefulSet").items()
                      if n == "rabbitmq"]
    spec = pod_spec(statefulset)
    (container,) = spec["containers"]
    assert "envFrom" not in container, "no default user: the definitions have the users"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == loaded_from()]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    secret = by_kind("overlays/dev", "Secret")[volume["secret"]["secretName"]]
    content = sources.secret_data(secret)[mount["subPath"]]
    assert json.loads(content) == definitions()
    config = by_kind("overlays/dev", "ConfigMap")["rabbitmq-config"]["data"]["rabbitmq.conf"]
    assert config == RABBITMQ_CONF.read_text()


# --- each component's URL ----------------------------------------------------------------


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_deployment_gives_each_component_its_own_secret(component: str) -> None:
    container = sources.only_container(sources.deployment("base", component))
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"]
              if e["name"] == "GRIDLINK_AMQP_URL"]
    assert ref == {"name": f"gridlink-rabbitmq-{component}", "key": "GRIDLINK_AMQP_URL"}
    for kustomization in ("overlays/dev", "overlays/production"):
        _, env = sources.kubernetes_launch(kustomization, component)
        if kustomization == "overlays/dev":
            check_login(env["GRIDLINK_AMQP_URL"], component)
            assert urlsplit(env["GRIDLINK_AMQP_URL"]).hostname in by_kind(kustomization,
                                                                          "Service")
        else:
            assert env["GRIDLINK_AMQP_URL"] == f"<secret {ref['name']}/{ref['key']}>"


def test_dev_overlay_has_a_requester_secret_for_gridlink_command() -> None:
    secret = by_kind("overlays/dev", "Secret")["gridlink-rabbitmq-cli"]
    check_login(sources.secret_data(secret)["GRIDLINK_AMQP_URL"], "cli")


@pytest.mark.parametrize("component", sorted(COMPOSE_SERVICE))
def test_compose_gives_each_component_its_own_user(component: str) -> None:
    for service, runs in {**sources.COMPOSE_COMPONENTS, "cli": "cli"}.items():
        if runs == component:
            check_login(sources.compose_env(service)["GRIDLINK_AMQP_URL"], component)
    assert "GRIDLINK_AMQP_URL" not in sources.compose()["x-gridlink-env"], "no shared URL"


def test_operations_document_the_permissions_and_the_secrets() -> None:
    operations = (sources.ROOT / "docs" / "operations.md").read_text()
    for line in broker_users.rabbitmqctl_commands(T, VHOST):
        assert line in operations, f"docs/operations.md lacks: {line}"
    for component in (*COMPONENTS, "cli"):
        assert f"create secret generic gridlink-rabbitmq-{component}" in operations

