"""docker-compose.yml and what it mounts: HAProxy, Prometheus, Grafana, RabbitMQ, MongoDB."""

from __future__ import annotations

import math
import re
import shutil
import subprocess

import pytest

from tests.deploy import sources, strict_yaml
from tests.deploy.sources import COMPOSE_COMPONENTS

GATEWAY_CAPACITY = 15000
INFRASTRUCTURE = {"rabbitmq", "mongo", "mongo-init", "haproxy", "prometheus", "grafana"}
TOOLS = {"cli"}  # `docker compose run --rm cli ...`; `up` does not start them


def test_compose_has_the_whole_cluster() -> None:
    assert set(sources.compose_services()) == INFRASTRUCTURE | TOOLS | set(COMPOSE_COMPONENTS)
    gateways = [s for s, c in COMPOSE_COMPONENTS.items() if c == "gateway"]
    assert len(gateways) == 2
    for tool in TOOLS:
        assert sources.compose_services()[tool]["profiles"] == ["tools"]


@pytest.mark.parametrize("service", sorted(COMPOSE_COMPONENTS))
def test_service_runs_gridlink_run_component(service: str) -> None:
    argv, _ = sources.compose_launch(service)
    assert argv == ["gridlink", "run", COMPOSE_COMPONENTS[service]]
    definition = sources.compose_services()[service]
    assert definition["image"] == "gridlink:dev" and definition["build"] == "."
    depends = definition["depends_on"]
    assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert depends["mongo-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", sorted(COMPOSE_COMPONENTS))
def test_service_environment_is_valid_gridlink_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    component = COMPOSE_COMPONENTS[service]
    _, env = sources.compose_launch(service)
    known = sources.settings_env_names()
    unknown = sorted(set(env) - set(known))
    assert not unknown, f"not GridLink settings (GridLink would silently ignore them): {unknown}"
    settings = sources.settings_of(env, monkeypatch, service)
    # Reaches the compose broker (as its own user: test_deploy_broker_users) and database.
    assert settings.amqp_url.startswith("amqp://gridlink-")
    assert settings.amqp_url.endswith("@rabbitmq:5672/gridlink")
    assert settings.mongo_url is not None
    assert settings.mongo_url.startswith("mongodb://mongo:27017/")
    assert "replicaSet=rs0" in settings.mongo_url
    instances = [sources.compose_launch(s)[1]["GRIDLINK_INSTANCE"] for s in COMPOSE_COMPONENTS]
    assert len(set(instances)) == len(instances), "instances name the gateways' queues"
    # The healthcheck asks /readyz on the port the component listens on.
    port = settings.gateway_port if component == "gateway" else settings.http_port
    check = " ".join(sources.compose_services()[service]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check


def test_gateways_have_time_to_drain() -> None:
    for service, component in COMPOSE_COMPONENTS.items():
        _, env = sources.compose_launch(service)
        grace = sources.parse_duration(sources.compose_services()[service]["stop_grace_period"])
        if component == "gateway":
            from services.settings import Settings

            defaults = Settings.model_fields
            batch = int(env.get("GRIDLINK_DRAIN_BATCH_SIZE", defaults["drain_batch_size"].default))
            interval = float(env.get("GRIDLINK_DRAIN_BATCH_INTERVAL_S",
                                     defaults["drain_batch_interval_s"].default))
            shutdown = float(env.get("GRIDLINK_SHUTDOWN_GRACE_S",
                                     defaults["shutdown_grace_s"].default))
            assert grace >= math.ceil(GATEWAY_CAPACITY / batch) * interval + shutdown
        else:
            assert grace > float(env["GRIDLINK_SHUTDOWN_GRACE_S"])


def test_mongodb_is_a_replica_set_initiated_once() -> None:
    mongo, init = sources.compose_services()["mongo"], sources.compose_services()["mongo-init"]
    assert mongo["image"].startswith("mongo:") and init["image"] == mongo["image"]
    command = mongo["command"]
    replica_set = command[command.index("--replSet") + 1]
    assert init["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    (script,) = sources.bind_mounts("mongo-init").items()
    assert script[0] in init["command"]
    text = script[1].read_text()
    assert f'_id: "{replica_set}"' in text
    assert '|| "mongo:27017"' in text  # the member address compose clients dial
    node = shutil.which("node")
    if node:  # mongosh scripts are JavaScript: at least the syntax is checked
        result = subprocess.run([node, "--check", str(script[1])], capture_output=True,
                                text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr


def test_rabbitmq_has_management_prometheus_and_per_queue_metrics() -> None:
    mounts = sources.bind_mounts("rabbitmq")
    plugins = mounts["/etc/rabbitmq/enabled_plugins"].read_text()
    assert re.fullmatch(r"\[[\w,\s]+\]\.\s*", plugins)
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(
        re.findall(r"\w+", plugins))
    config = mounts["/etc/rabbitmq/conf.d/90-gridlink.conf"].read_text()
    assert re.search(r"^prometheus\.return_per_object_metrics\s*=\s*true$", config, re.M)
    assert sources.compose_services()["rabbitmq"]["image"].endswith("-management")


def test_prometheus_scrapes_every_process() -> None:
    mounts = sources.bind_mounts("prometheus")
    config = strict_yaml.load_file(mounts["/etc/prometheus"] / "prometheus.yml")
    targets = {job["job_name"]: {t for c in job["static_configs"] for t in c["targets"]}
               for job in config["scrape_configs"]}
    for service, component in COMPOSE_COMPONENTS.items():
        env = sources.compose_env(service)
        port = sources.port_setting(env, sources.METRICS_PORT_SETTING[component])
        assert port, f"{service}: /metrics on the public port"
        assert f"{service}:{port}" in targets[f"gridlink-{component}"]
    # Gateways: their metrics port, not the OCPP port HAProxy forwards.
    for service in ("gateway-1", "gateway-2"):
        assert f"{service}:{sources.compose_env(service)['GRIDLINK_GATEWAY_PORT']}" not in targets[
            "gridlink-gateway"]
    assert targets["rabbitmq"] == {"rabbitmq:15692"}
    assert re.search(r"bind :8404", sources.haproxy_config())
    assert targets["haproxy"] == {"haproxy:8404"}
    rule_files = [f for pattern in config["rule_files"]
                  for f in (mounts["/etc/prometheus"]).glob(pattern)]
    assert [f.name for f in rule_files] == ["gridlink-alerts.yml"]


def test_grafana_provisions_the_dashboard_and_prometheus() -> None:
    mounts = sources.bind_mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = strict_yaml.load_file(provisioning / "dashboards" / "gridlink.yml")["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "gridlink.json").is_file()
    grafana = sources.compose_services()["grafana"]["environment"]
    home = grafana["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/gridlink.json"
    (datasource,) = strict_yaml.load_file(
        provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "9090:9090" in sources.compose_services()["prometheus"]["ports"]


def test_the_ftp_listener_is_published_port_for_port() -> None:
    """Chargers reach the commands service's FTP control port and every passive port under
    their own numbers (a passive reply names the port the data connection must reach)."""
    _, env = sources.compose_launch("commands")
    published = set(sources.compose_services()["commands"]["ports"])
    first, last = env["GRIDLINK_FTP_PASSIVE_PORTS"].split("-")
    assert published == {f"{env['GRIDLINK_FTP_PORT']}:{env['GRIDLINK_FTP_PORT']}",
                         f"{first}-{last}:{first}-{last}"}
    assert env["GRIDLINK_FTP_PUBLIC_HOST"] == "127.0.0.1"  # the host's mapped ports
