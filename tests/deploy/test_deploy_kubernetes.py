"""The Kubernetes manifests: schema-valid, and consistent with GridLink and with each other.

The manifests are what ``kubectl kustomize`` renders (``sources.rendered``, once per
kustomization and session). Without kubectl these tests fail, in ``make test`` and outside it,
with one message naming what to install (``sources.KUBECTL_MISSING``); ``make test-tools``
installs it where apt can.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy import sources, strict_yaml
from tests.deploy.manifests import container_port, labels_match
from tests.deploy.sources import COMPONENTS, FILES_SERVICE, KUSTOMIZATIONS, by_kind, resources

# Oldest Kubernetes still commonly run in production, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def all_yaml_files() -> list[Path]:
    files = [sources.COMPOSE_FILE]
    for pattern in ("*.yaml", "*.yml"):
        files += sources.DEPLOY.rglob(pattern)
        files += Path(__file__).parent.rglob(pattern)
    return sorted(set(files))


# --- YAML --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", all_yaml_files(), ids=lambda p: str(p.relative_to(sources.ROOT)))
def test_yaml_file_parses_without_duplicate_keys(path: Path) -> None:
    documents = strict_yaml.load_all_file(path)
    assert documents, f"{path} is empty"


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(strict_yaml.DuplicateKeyError, match="'image'"):
        strict_yaml.load("containers:\n  - image: a\n    image: b\n")
    merged = strict_yaml.load("a: &x {k: 1}\nb:\n  <<: *x\n  k: 2\n")
    assert merged == {"a": {"k": 1}, "b": {"k": 2}}


def test_json_files_parse() -> None:
    for path in sources.DEPLOY.rglob("*.json"):
        json.loads(path.read_text())


# --- rendered manifests ------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_manifests_are_valid_kubernetes(kustomization: str, version: str) -> None:
    checked = 0
    for resource in resources(kustomization):
        if resource["kind"] in CRD_KINDS:
            continue
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{kustomization}: {name}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{kustomization}: {name}: no schema for {resource['apiVersion']}")
        checked += 1
    assert checked >= 20


def test_schema_validation_catches_a_typo() -> None:
    deploy = json.loads(json.dumps(sources.deployment("base", "gateway")))
    deploy["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, KUBERNETES_VERSIONS[0], strict=True)


# The Prometheus Operator CRDs are not in the core schemas: check the fields GridLink uses.
_LABEL_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {"matchLabels": _LABEL_MAP, "matchExpressions": {"type": "array"}},
}
_METADATA = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                   "labels": _LABEL_MAP, "annotations": _LABEL_MAP},
}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"}
SERVICE_MONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"}, "selector": _SELECTOR,
                "namespaceSelector": {"type": "object"},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["port"], "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"}, "path": {"type": "string"},
                        "interval": _DURATION, "scrapeTimeout": _DURATION,
                        "scheme": {"enum": ["http", "https"]},
                        "relabelings": {"type": "array", "items": {
                            "type": "object", "additionalProperties": False,
                            "properties": {
                                "sourceLabels": {"type": "array", "items": {"type": "string"}},
                                "targetLabel": {"type": "string"}, "regex": {"type": "string"},
                                "replacement": {"type": "string"},
                                "action": {"enum": ["replace", "keep", "drop", "labelmap",
                                                    "labeldrop", "labelkeep", "hashmod"]},
                            }}},
                    }}},
            }},
    },
}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {"type": "object", "required": ["groups"], "additionalProperties": False,
                 "properties": {"groups": {"type": "array", "minItems": 1, "items": {
                     "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                     "properties": {
                         "name": {"type": "string"}, "interval": _DURATION,
                         "rules": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "required": ["expr"], "additionalProperties": False,
                             "properties": {
                                 "alert": {"type": "string"}, "record": {"type": "string"},
                                 "expr": {"type": "string"}, "for": _DURATION,
                                 "labels": _LABEL_MAP, "annotations": _LABEL_MAP,
                             }}},
                     }}}}},
    },
}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_prometheus_operator_resources_are_well_formed(kustomization: str) -> None:
    monitors = by_kind(kustomization, "ServiceMonitor")
    rules = by_kind(kustomization, "PrometheusRule")
    assert list(monitors) == ["gridlink"] and list(rules) == ["gridlink"]
    jsonschema.validate(monitors["gridlink"], SERVICE_MONITOR_SCHEMA)
    jsonschema.validate(rules["gridlink"], PROMETHEUS_RULE_SCHEMA)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_service_monitor_scrapes_every_component_but_not_the_load_balancer(
    kustomization: str,
) -> None:
    monitor = by_kind(kustomization, "ServiceMonitor")["gridlink"]["spec"]
    services = by_kind(kustomization, "Service")
    selected = {name: s for name, s in services.items()
                if labels_match(monitor["selector"], s["metadata"]["labels"])}
    assert "gridlink-gateway" not in selected and FILES_SERVICE not in selected
    (endpoint,) = monitor["endpoints"]
    assert endpoint["path"] == "/metrics"
    jobs = {}
    for component in COMPONENTS:
        deploy = sources.deployment(kustomization, component)
        matching = [s for s in selected.values()
                    if s["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]]
        assert len(matching) == 1, f"{component}: scraped through {len(matching)} Services"
        service = matching[0]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        _, env = sources.kubernetes_launch(kustomization, component)
        listen = sources.port_setting(env, sources.METRICS_PORT_SETTING[component])
        assert listen, f"{component}: /metrics on the public port"
        assert container_port(sources.only_container(deploy), port["targetPort"]) == listen
        jobs[component] = service["metadata"]["labels"][monitor["jobLabel"]]
    # The same job names as the compose Prometheus, so alerts and dashboard fit both.
    compose_jobs = {job["job_name"] for job in strict_yaml.load_file(
        sources.DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]}
    assert jobs == {c: f"gridlink-{c}" for c in COMPONENTS}
    assert set(jobs.values()) <= compose_jobs


def test_credentials_come_from_secrets_the_overlay_or_operator_provides() -> None:
    referenced = set()
    for component in COMPONENTS:
        container = sources.only_container(sources.deployment("base", component))
        referenced |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]
                       if "secretKeyRef" in e.get("valueFrom", {})}
    assert referenced == {*(f"gridlink-rabbitmq-{c}" for c in COMPONENTS), "gridlink-mongodb",
                          "gridlink-webhooks"}  # the API's key of webhook secrets at rest
    dev_secrets = by_kind("overlays/dev", "Secret")
    assert referenced <= set(dev_secrets)
    assert by_kind("overlays/production", "Secret") == {}, "no credentials in the repository"
    operations = (sources.ROOT / "docs" / "operations.md").read_text()
    for name in referenced:
        assert f"create secret generic {name}" in operations


#: Settings the ConfigMap leaves out on purpose: only `gridlink run all` reads them.
NOT_IN_CONFIG_MAP = {"GRIDLINK_DATA_DIR", "GRIDLINK_EMBEDDED_MONGO_PORT"}
#: Set per pod, from Secrets, or by each overlay (it depends on the cluster's address).
PER_POD = {"GRIDLINK_AMQP_URL", "GRIDLINK_MONGO_URL", "GRIDLINK_INSTANCE",
           "GRIDLINK_FILES_PUBLIC_URL",
           "GRIDLINK_WEBHOOK_SECRET_KEY"}  # a credential: the API's, from a Secret


def test_every_setting_is_in_the_config_map() -> None:
    from services.settings import Settings

    data = by_kind("base", "ConfigMap")["gridlink-settings"]["data"]
    wanted = {f"GRIDLINK_{name.upper()}" for name in Settings.model_fields}
    missing = wanted - set(data) - NOT_IN_CONFIG_MAP - PER_POD
    assert not missing, f"add these to deploy/kubernetes/base/settings.yaml: {sorted(missing)}"
    assert not set(data) - wanted, "the ConfigMap names settings that do not exist"


def test_dashboard_config_map_is_the_dashboard_file() -> None:
    maps = by_kind("base", "ConfigMap")
    dashboard = maps["gridlink-grafana-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = dashboard["data"].values()
    path = sources.DEPLOY / "grafana" / "dashboards" / "gridlink.json"
    assert json.loads(content) == json.loads(path.read_text())


def test_dev_overlay_brings_its_own_broker_and_database() -> None:
    _, env = sources.kubernetes_launch("overlays/dev", "authz")
    services = by_kind("overlays/dev", "Service")
    amqp_host = env["GRIDLINK_AMQP_URL"].split("@")[1].split(":")[0]
    mongo_host = env["GRIDLINK_MONGO_URL"].split("//")[1].split(":")[0]
    assert amqp_host in services
    pod, _, service = mongo_host.partition(".")
    assert service in services and services[service]["spec"]["clusterIP"] == "None"
    assert pod.rsplit("-", 1)[0] in by_kind("overlays/dev", "StatefulSet")
    assert "replicaSet=rs0" in env["GRIDLINK_MONGO_URL"]
    job = by_kind("overlays/dev", "Job")["mongodb-init-replica-set"]
    (init,) = job["spec"]["template"]["spec"]["containers"]
    init_env = {e["name"]: e["value"] for e in init["env"]}
    assert init_env["MONGO_RS_HOST"] == mongo_host + ":27017"


def test_yaml_loader_is_strict_for_kustomize_too() -> None:
    # The dev overlay's strategic-merge patch applies to the base's gateway, and only where
    # it says.
    dev = sources.deployment("overlays/dev", "gateway")
    base = sources.deployment("base", "gateway")
    assert sources.only_container(dev)["resources"]["requests"]["cpu"] == "100m"
    assert sources.only_container(base)["resources"]["requests"]["cpu"] == "1"
    assert sources.only_container(dev)["resources"]["limits"] == sources.only_container(
        base)["resources"]["limits"]
    assert yaml.safe_load("a: 1") == {"a": 1}
