"""docker-compose.yml and what it mounts: HAProxy, Prometheus, Grafana, RabbitMQ, MongoDB."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.deploy import sources, strict_yaml
from tests.deploy.sources import COMPOSE_COMPONENTS

GATEWAY_CAPACITY = 15000
INFRASTRUCTURE = {"rabbitmq", "mongo", "mongo-init", "haproxy", "prometheus", "grafana"}


def services() -> dict[str, Any]:
    return sources.compose()["services"]  # type: ignore[no-any-return]


def bind_mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (host paths must exist)."""
    mounts = {}
    for volume in services()[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            path = sources.ROOT / host
            assert path.exists(), f"{service} mounts missing {host}"
            mounts[container] = path
    return mounts


def parse_duration(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        total += float(value) * units[unit]
    return total


def test_compose_has_the_whole_cluster() -> None:
    assert set(services()) == INFRASTRUCTURE | set(COMPOSE_COMPONENTS)
    gateways = [s for s, c in COMPOSE_COMPONENTS.items() if c == "gateway"]
    assert len(gateways) == 2


@pytest.mark.parametrize("service", sorted(COMPOSE_COMPONENTS))
def test_service_runs_gridlink_run_component(service: str) -> None:
    argv, _ = sources.compose_launch(service)
    assert argv == ["gridlink", "run", COMPOSE_COMPONENTS[service]]
    definition = services()[service]
    assert definition["image"] == "gridlink:dev" and definition["build"] == "."
    depends = definition["depends_on"]
    assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert depends["mongo-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", sorted(COMPOSE_COMPONENTS))
def test_service_environment_is_valid_gridlink_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.settings import Settings

    component = COMPOSE_COMPONENTS[service]
    _, env = sources.compose_launch(service)
    known = sources.settings_env_names()
    unknown = sorted(set(env) - set(known))
    assert not unknown, f"not GridLink settings (GridLink would silently ignore them): {unknown}"
    for key in known:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        settings = Settings()
    except ValidationError as exc:
        pytest.fail(f"{service}: {exc}")
    # Reaches the compose broker and database, as the users they create.
    rabbit = services()["rabbitmq"]["environment"]
    assert settings.amqp_url == (f"amqp://{rabbit['RABBITMQ_DEFAULT_USER']}:"
                                 f"{rabbit['RABBITMQ_DEFAULT_PASS']}@rabbitmq:5672/")
    assert settings.mongo_url is not None
    assert settings.mongo_url.startswith("mongodb://mongo:27017/")
    assert "replicaSet=rs0" in settings.mongo_url
    instances = [sources.compose_launch(s)[1]["GRIDLINK_INSTANCE"] for s in COMPOSE_COMPONENTS]
    assert len(set(instances)) == len(instances), "instances name the gateways' queues"
    # The healthcheck asks /readyz on the port the component listens on.
    port = settings.gateway_port if component == "gateway" else settings.http_port
    check = " ".join(services()[service]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check


def test_gateways_have_time_to_drain() -> None:
    for service, component in COMPOSE_COMPONENTS.items():
        _, env = sources.compose_launch(service)
        grace = parse_duration(services()[service]["stop_grace_period"])
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
    mongo, init = services()["mongo"], services()["mongo-init"]
    assert mongo["image"].startswith("mongo:") and init["image"] == mongo["image"]
    command = mongo["command"]
    replica_set = command[command.index("--replSet") + 1]
    assert init["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    (script,) = bind_mounts("mongo-init").items()
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
    mounts = bind_mounts("rabbitmq")
    plugins = mounts["/etc/rabbitmq/enabled_plugins"].read_text()
    assert re.fullmatch(r"\[[\w,\s]+\]\.\s*", plugins)
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(
        re.findall(r"\w+", plugins))
    config = mounts["/etc/rabbitmq/conf.d/90-gridlink.conf"].read_text()
    assert re.search(r"^prometheus\.return_per_object_metrics\s*=\s*true$", config, re.M)
    assert services()["rabbitmq"]["image"].endswith("-management")


def haproxy_config() -> str:
    return bind_mounts("haproxy")["/usr/local/etc/haproxy/haproxy.cfg"].read_text()


def test_haproxy_balances_websockets_over_every_gateway() -> None:
    config = haproxy_config()
    gateways = {s for s, c in COMPOSE_COMPONENTS.items() if c == "gateway"}
    servers = dict(re.findall(r"^\s*server\s+(\S+)\s+(\S+)", config, re.M))
    assert set(servers) == gateways
    for service, address in servers.items():
        port = sources.compose_launch(service)[1]["GRIDLINK_GATEWAY_PORT"]
        assert address == f"{service}:{port}"
    assert re.search(r"^\s*balance\s+leastconn$", config, re.M)
    assert re.search(r"^\s*option\s+httpchk\s+GET\s+/readyz$", config, re.M)
    tunnel = parse_duration(re.search(r"^\s*timeout\s+tunnel\s+(\S+)$", config, re.M).group(1))  # type: ignore[union-attr]
    from services.settings import Settings

    assert tunnel > 2 * float(Settings.model_fields["ping_interval_s"].default)
    assert "9000:9000" in services()["haproxy"]["ports"]


def test_haproxy_accepts_its_configuration() -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed: apt-get install -y --no-install-recommends haproxy")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(sources.DEPLOY / "haproxy" / "haproxy.cfg")],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "could not resolve" not in result.stderr.replace("could not resolve address", "")


def test_prometheus_scrapes_every_process() -> None:
    mounts = bind_mounts("prometheus")
    config = strict_yaml.load_file(mounts["/etc/prometheus"] / "prometheus.yml")
    targets = {job["job_name"]: {t for c in job["static_configs"] for t in c["targets"]}
               for job in config["scrape_configs"]}
    for service, component in COMPOSE_COMPONENTS.items():
        _, env = sources.compose_launch(service)
        port = env.get("GRIDLINK_GATEWAY_PORT" if component == "gateway" else "GRIDLINK_HTTP_PORT")
        assert f"{service}:{port}" in targets[f"gridlink-{component}"]
    assert targets["rabbitmq"] == {"rabbitmq:15692"}
    assert re.search(r"bind :8404", haproxy_config())
    assert targets["haproxy"] == {"haproxy:8404"}
    rule_files = [f for pattern in config["rule_files"]
                  for f in (mounts["/etc/prometheus"]).glob(pattern)]
    assert [f.name for f in rule_files] == ["gridlink-alerts.yml"]


def test_grafana_provisions_the_dashboard_and_prometheus() -> None:
    mounts = bind_mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = strict_yaml.load_file(provisioning / "dashboards" / "gridlink.yml")["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "gridlink.json").is_file()
    home = services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/gridlink.json"
    (datasource,) = strict_yaml.load_file(
        provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "9090:9090" in services()["prometheus"]["ports"]
