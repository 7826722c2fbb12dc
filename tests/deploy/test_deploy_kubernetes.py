"""The Kubernetes manifests: schema-valid, and consistent with GridLink and with each other.

The manifests are what ``kubectl kustomize`` renders (``sources.rendered``, once per
kustomization and session). Without kubectl these tests fail, in ``make test`` and outside it,
with one message naming what to install (``sources.KUBECTL_MISSING``); ``make test-tools``
installs it where apt can.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from tests.deploy import manifests, sources, strict_yaml
from tests.deploy.sources import COMPONENTS, KUSTOMIZATIONS, SERVICES

# Oldest Kubernetes still commonly run in production, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Sizing of a gateway pod (docs/operations.md, "Sizing"): chargers per pod at 1 CPU / 1 GiB.
GATEWAY_CAPACITY = 15000
# Settings no deployment sets: only `gridlink run all` uses the embedded database, and the
# gateway's public URL is only printed.
UNSET_SETTINGS = {"GRIDLINK_EMBEDDED_MONGO_PORT", "GRIDLINK_DATA_DIR", "GRIDLINK_PUBLIC_URL"}
# Settings that depend on an installation's DNS names: each overlay sets them, the base cannot.
OVERLAY_SETTINGS = {"GRIDLINK_FILES_PUBLIC_URL"}
OVERLAYS = [k for k in KUSTOMIZATIONS if k != "base"]


def all_yaml_files() -> list[Path]:
    files = [sources.COMPOSE_FILE]
    for pattern in ("*.yaml", "*.yml"):
        files += sources.DEPLOY.rglob(pattern)
        files += Path(__file__).parent.rglob(pattern)
    return sorted(set(files))


def resources(kustomization: str) -> list[dict[str, Any]]:
    return list(sources.rendered(kustomization))


def by_kind(kustomization: str, kind: str) -> dict[str, dict[str, Any]]:
    return manifests.by_kind(resources(kustomization), kind)


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions In/NotIn/Exists) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator == "NotIn" and labels.get(key) in expression["values"]:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (number or containerPort name) as a number."""
    if isinstance(port, int):
        assert port in [p["containerPort"] for p in container["ports"]], port
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in named, f"container {container['name']} has no port named {port!r}"
    return int(named[port])


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


# --- what each container runs -------------------------------------------------------------


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_container_runs_gridlink_run_component(kustomization: str, component: str) -> None:
    deploy = sources.deployment(kustomization, component)
    container = sources.only_container(deploy)
    assert container["name"] == component
    argv, _ = sources.kubernetes_launch(kustomization, component)
    assert argv == ["gridlink", "run", component]


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_environment_sets_every_setting_and_only_settings(
    kustomization: str, component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.settings import Settings

    _, env = sources.kubernetes_launch(kustomization, component)
    known = sources.settings_env_names()
    unknown = sorted(set(env) - set(known))
    assert not unknown, f"not GridLink settings (GridLink would silently ignore them): {unknown}"
    needed = set(known) - UNSET_SETTINGS
    if kustomization == "base":
        needed -= OVERLAY_SETTINGS
    if component == "gateway":
        needed.discard("GRIDLINK_MONGO_URL")  # the gateway never talks to MongoDB
        assert "GRIDLINK_MONGO_URL" not in env, "the Internet-facing pod holds DB credentials"
    missing = needed - set(env)
    assert not missing, f"settings not configured in the ConfigMap/Secrets: {sorted(missing)}"
    # ... and every value is one GridLink accepts.
    for key in known:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        settings = Settings()
    except ValidationError as exc:
        pytest.fail(f"{kustomization} {component}: {exc}")
    assert settings.instance.startswith(f"gridlink-{component}-")  # the pod name


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_container_ports_are_the_ports_the_component_listens_on(
    kustomization: str, component: str
) -> None:
    container = sources.only_container(sources.deployment(kustomization, component))
    _, env = sources.kubernetes_launch(kustomization, component)
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    listening = {name: sources.port_setting(env, key)
                 for name, key in sources.CONTAINER_PORTS[component].items()}
    assert declared == listening
    assert len(set(declared.values())) == len(declared), "two servers cannot share a port"
    assert all(p["protocol"] == "TCP" for p in container["ports"])
    if component == "gateway":
        # /metrics is served on the metrics port, bound to GRIDLINK_HTTP_HOST, reachable by
        # Prometheus from other pods; the OCPP port answers 404 for it.
        assert sources.setting(env, "GRIDLINK_HTTP_HOST") == "0.0.0.0"
    if component == "commands":
        assert sources.setting(env, "GRIDLINK_FILES_HOST") == "0.0.0.0"


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_probes_use_the_port_the_component_listens_on(kustomization: str, component: str) -> None:
    # The gateway's probes stay on its OCPP port (not its metrics port): they must fail when
    # the server chargers use is stuck, and they ask what the load balancer's health check asks.
    container = sources.only_container(sources.deployment(kustomization, component))
    _, env = sources.kubernetes_launch(kustomization, component)
    listen = int(env[sources.PROBE_PORT_SETTING[component]])
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        http = container[probe]["httpGet"]
        assert http["path"] == path, probe
        assert container_port(container, http["port"]) == listen, probe
    assert container["livenessProbe"]["failureThreshold"] * container["livenessProbe"][
        "periodSeconds"] >= 30, "a busy gateway must not be killed by a short liveness window"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_drains_within_its_termination_grace_period(kustomization: str) -> None:
    deploy = sources.deployment(kustomization, "gateway")
    pod = manifests.pod_spec(deploy)
    container = sources.only_container(deploy)
    _, env = sources.kubernetes_launch(kustomization, "gateway")
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain_s = math.ceil(GATEWAY_CAPACITY / int(env["GRIDLINK_DRAIN_BATCH_SIZE"])) * float(
        env["GRIDLINK_DRAIN_BATCH_INTERVAL_S"])
    needed = int(pre_stop[1]) + drain_s + float(env["GRIDLINK_SHUTDOWN_GRACE_S"]) + 10
    assert pod["terminationGracePeriodSeconds"] >= needed
    strategy = deploy["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 1, "maxUnavailable": 0}
    assert deploy["spec"]["minReadySeconds"] >= 10


@pytest.mark.parametrize("component", SERVICES)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_services_finish_in_flight_work_before_sigkill(kustomization: str, component: str) -> None:
    deploy = sources.deployment(kustomization, component)
    _, env = sources.kubernetes_launch(kustomization, component)
    grace = manifests.pod_spec(deploy)["terminationGracePeriodSeconds"]
    pre_stop = sources.only_container(deploy).get("lifecycle", {}).get("preStop")
    waits = 0
    if pre_stop is not None:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep", command
        waits = int(command[1])
    assert grace >= waits + float(env["GRIDLINK_SHUTDOWN_GRACE_S"]) + 10
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    if component == "commands":
        # Chargers' file transfers go to its pods: it keeps serving while it leaves the
        # Service's endpoints, so no new transfer is sent to a stopped file server.
        assert waits >= 10


# --- scaling and disruption ---------------------------------------------------------------


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_component_has_an_autoscaler_and_a_disruption_budget(kustomization: str) -> None:
    from services import metrics

    hpas = by_kind(kustomization, "HorizontalPodAutoscaler")
    pdbs = by_kind(kustomization, "PodDisruptionBudget")
    for component in COMPONENTS:
        deploy = sources.deployment(kustomization, component)
        name = deploy["metadata"]["name"]
        assert "replicas" not in deploy["spec"], f"{name}: replicas belong to the autoscaler"
        hpa = hpas[name]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": name}
        assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
        kinds = {m["type"]: m for m in hpa["metrics"]}
        assert kinds["Resource"]["resource"]["name"] == "cpu"
        if component == "gateway":
            pods = kinds["Pods"]["pods"]
            assert pods["metric"]["name"] == metrics.CONNECTIONS._name
            assert 0 < int(pods["target"]["averageValue"]) < GATEWAY_CAPACITY
            assert hpa["behavior"]["scaleDown"]["policies"] == [
                {"type": "Pods", "value": 1, "periodSeconds": 600}]
        pdb = pdbs[name]["spec"]
        template_labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert labels_match(pdb["selector"], template_labels)
        assert pdb == {"maxUnavailable": 1, "selector": deploy["spec"]["selector"]}
        if kustomization == "overlays/production":
            assert hpa["minReplicas"] >= 3


def test_prometheus_adapter_serves_the_gateway_hpa_metric() -> None:
    values = strict_yaml.load_file(sources.KUBERNETES / "prometheus-adapter" / "values.yaml")
    hpa = by_kind("base", "HorizontalPodAutoscaler")["gridlink-gateway"]["spec"]
    wanted = next(m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods")
    rules = values["rules"]["custom"]
    served = [r for r in rules if r["name"]["as"] == wanted]
    assert len(served) == 1
    assert served[0]["seriesQuery"].startswith(wanted + "{")
    assert set(served[0]["resources"]["overrides"]) == {"namespace", "pod"}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_resources_and_security(kustomization: str) -> None:
    final = sources.dockerfile_stages()[-1]
    user = next(args for name, args in final if name == "USER")
    uid = int(user.split(":")[0])
    for component in COMPONENTS:
        deploy = sources.deployment(kustomization, component)
        pod = manifests.pod_spec(deploy)
        container = sources.only_container(deploy)
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests)
        if kustomization != "overlays/dev":  # a laptop may overcommit
            assert requests["memory"] == limits["memory"], "memory is not overcommitted"
            expected = {"cpu": "1", "memory": "1Gi"} if component == "gateway" else {
                "cpu": "500m", "memory": "512Mi"}
            assert requests == expected
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid != 0
        assert pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_all_components_run_one_pinned_image(kustomization: str) -> None:
    images = {sources.only_container(sources.deployment(kustomization, c))["image"]
              for c in COMPONENTS}
    assert len(images) == 1
    image = images.pop()
    name, _, tag = image.rpartition(":")
    assert name.endswith("gridlink") and tag
    if kustomization == "overlays/production":
        assert tag not in {"latest", "dev"} and "example.com" in name  # a placeholder to set


# --- network ------------------------------------------------------------------------------

ANYWHERE = None  # a NetworkPolicy rule without "from"
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
INGRESS_CONTROLLER = {  # ingress-nginx as its Helm chart installs it
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx",
                                    "app.kubernetes.io/component": "controller"}}}
FILES_SERVICE = "gridlink-commands-files"


def _ingress_allowed(kustomization: str, labels: dict[str, str]) -> list[dict[str, Any]] | None:
    """The ingress rules that apply to a pod, or None when no policy isolates it."""
    policies = [p["spec"] for p in by_kind(kustomization, "NetworkPolicy").values()
                if labels_match(p["spec"]["podSelector"], labels)
                and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not policies:
        return None
    return [rule for policy in policies for rule in policy.get("ingress", [])]


def admitted(kustomization: str, component: str) -> dict[int, list[dict[str, Any] | None]]:
    """Container port -> the peers NetworkPolicies let connect to it (ANYWHERE: everyone)."""
    deploy = sources.deployment(kustomization, component)
    container = sources.only_container(deploy)
    rules = _ingress_allowed(kustomization, deploy["spec"]["template"]["metadata"]["labels"])
    assert rules is not None, f"{component} is not isolated by any NetworkPolicy"
    access: dict[int, list[dict[str, Any] | None]] = {}
    for rule in rules:
        assert rule.get("ports"), f"{component}: a rule without ports opens every port"
        for port in rule["ports"]:
            assert port.get("protocol", "TCP") == "TCP"
            access.setdefault(container_port(container, port["port"]), []).extend(
                rule.get("from") or [ANYWHERE])
    return access


def _exposure(kustomization: str) -> str | None:
    """How chargers reach the file server: "ingress", "node-port" or None (not at all)."""
    service = by_kind(kustomization, "Service")[FILES_SERVICE]
    if service["spec"].get("type") in ("NodePort", "LoadBalancer"):
        return "node-port"
    return "ingress" if by_kind(kustomization, "Ingress") else None


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_network_policies_admit_chargers_and_prometheus_only_where_they_belong(
    kustomization: str,
) -> None:
    envs = {c: sources.kubernetes_launch(kustomization, c)[1] for c in COMPONENTS}

    def port(component: str, key: str) -> int:
        return sources.port_setting(envs[component], key)

    # Chargers come straight from the L4 load balancer (with their own addresses) to the
    # gateways, and to the file server through the ingress controller (dev: a NodePort).
    file_peer = ANYWHERE if _exposure(kustomization) == "node-port" else INGRESS_CONTROLLER
    expected = {
        "gateway": {port("gateway", "GRIDLINK_GATEWAY_PORT"): [ANYWHERE],
                    port("gateway", "GRIDLINK_GATEWAY_METRICS_PORT"): [PROMETHEUS]},
        "authz": {port("authz", "GRIDLINK_HTTP_PORT"): [PROMETHEUS]},
        "transactions": {port("transactions", "GRIDLINK_HTTP_PORT"): [PROMETHEUS]},
        "commands": {port("commands", "GRIDLINK_HTTP_PORT"): [PROMETHEUS],
                     port("commands", "GRIDLINK_FILES_PORT"): [file_peer]},
    }
    for component in COMPONENTS:
        assert admitted(kustomization, component) == expected[component], component


def _backends(kustomization: str, service: dict[str, Any],
              port: dict[str, Any]) -> set[tuple[str, int]]:
    """(component, container port) a Service port leads to; ("other", name) for non-GridLink."""
    reached = set()
    for component in COMPONENTS:
        deploy = sources.deployment(kustomization, component)
        if labels_match({"matchLabels": service["spec"]["selector"]},
                        deploy["spec"]["template"]["metadata"]["labels"]):
            container = sources.only_container(deploy)
            reached.add((component, container_port(container, port["targetPort"])))
    return reached or {("other", service["metadata"]["name"])}


def reachable_from_outside(kustomization: str) -> set[tuple[Any, Any]]:
    """What load balancers, node ports and Ingresses lead to."""
    services = by_kind(kustomization, "Service")
    reached: set[tuple[Any, Any]] = set()
    for service in services.values():
        if service["spec"].get("type") in ("LoadBalancer", "NodePort"):
            for port in service["spec"]["ports"]:
                reached |= _backends(kustomization, service, port)
    for ingress in by_kind(kustomization, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services[backend["name"]]
                (port,) = [p for p in service["spec"]["ports"]
                           if p.get("name") == backend["port"].get("name")
                           or p["port"] == backend["port"].get("number")]
                reached |= _backends(kustomization, service, port)
    return reached


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_only_the_ocpp_port_and_the_file_server_are_exposed(kustomization: str) -> None:
    gateway = sources.kubernetes_launch(kustomization, "gateway")[1]
    commands = sources.kubernetes_launch(kustomization, "commands")[1]
    expected = {("gateway", sources.port_setting(gateway, "GRIDLINK_GATEWAY_PORT"))}
    if kustomization != "base":  # the base leaves the file server's exposure to overlays
        expected.add(("commands", sources.port_setting(commands, "GRIDLINK_FILES_PORT")))
    assert reachable_from_outside(kustomization) == expected
    # In particular not the gateway's /metrics, which has a port of its own.
    metrics = sources.port_setting(gateway, "GRIDLINK_GATEWAY_METRICS_PORT")
    assert metrics not in (0, sources.port_setting(gateway, "GRIDLINK_GATEWAY_PORT"))


def nginx_size(text: str) -> int:
    """An nginx size ("101m", "8k", "1048576") in bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    unit = text[-1].lower()
    return int(text[:-1]) * units[unit] if unit in units else int(text)


@pytest.mark.parametrize("kustomization", OVERLAYS)
def test_chargers_reach_the_file_server_at_its_public_url(kustomization: str) -> None:
    from commands.files import rules as files
    from commands.files.http_server import MULTIPART_OVERHEAD

    _, env = sources.kubernetes_launch(kustomization, "commands")
    base = env["GRIDLINK_FILES_PUBLIC_URL"]
    url = urlsplit(base)
    # The CLI builds locations from it in any pod, the commands service recognises its own.
    for component in COMPONENTS:
        assert sources.kubernetes_launch(kustomization, component)[1][
            "GRIDLINK_FILES_PUBLIC_URL"] == base
    # Nothing rewrites paths on the way: the file server serves /diagnostics/ and /firmware/.
    assert url.path in ("", "/") and url.hostname
    deploy = sources.deployment(kustomization, "commands")
    service = by_kind(kustomization, "Service")[FILES_SERVICE]
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert "gridlink.io/metrics" not in service["metadata"]["labels"], "not a scrape target"
    (port,) = service["spec"]["ports"]
    assert container_port(sources.only_container(deploy), port["targetPort"]) == int(
        env["GRIDLINK_FILES_PORT"])
    paths = [urlsplit(files.diagnostics_location(base, "CP-1", files.new_token())).path,
             urlsplit(files.firmware_url(base, "cp-2.4.1.bin")).path]
    assert [p.split("/")[1] for p in paths] == ["diagnostics", "firmware"]

    if _exposure(kustomization) == "node-port":
        assert url.scheme == "http" and url.port == port["nodePort"]
        return
    assert _exposure(kustomization) == "ingress"
    (ingress,) = by_kind(kustomization, "Ingress").values()
    spec = ingress["spec"]
    assert url.scheme == "https" and url.port is None, "TLS at the ingress"
    assert spec["ingressClassName"] == "nginx"  # INGRESS_CONTROLLER's pods
    assert any(url.hostname in tls["hosts"] and tls["secretName"] for tls in spec["tls"])
    (rule,) = spec["rules"]
    assert rule["host"] == url.hostname
    routes = rule["http"]["paths"]
    for route in routes:
        assert route["pathType"] == "Prefix"
        assert route["backend"]["service"] == {"name": FILES_SERVICE,
                                               "port": {"name": port["name"]}}
    # Exactly the two paths chargers are sent to.
    prefixes = sorted(route["path"].rstrip("/") for route in routes)
    assert prefixes == ["/diagnostics", "/firmware"]
    for path in paths:
        assert any(path.startswith(prefix + "/") for prefix in prefixes), path
    # Large uploads over slow links, streamed; URLs with upload tokens stay out of the logs.
    annotations = ingress["metadata"]["annotations"]
    nginx = "nginx.ingress.kubernetes.io/"
    assert nginx_size(annotations[nginx + "proxy-body-size"]) >= int(
        env["GRIDLINK_MAX_UPLOAD_BYTES"]) + MULTIPART_OVERHEAD
    assert annotations[nginx + "proxy-request-buffering"] == "off"
    assert int(annotations[nginx + "proxy-send-timeout"]) >= 300
    assert int(annotations[nginx + "proxy-read-timeout"]) >= 300
    assert annotations[nginx + "enable-access-log"] == "false"


def test_nginx_sizes() -> None:
    assert nginx_size("101m") == 101 << 20
    assert nginx_size("8k") == 8192
    assert nginx_size("1048576") == 1 << 20


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gateway_load_balancer_suits_long_lived_websockets(kustomization: str) -> None:
    service = by_kind(kustomization, "Service")["gridlink-gateway"]
    deploy = sources.deployment(kustomization, "gateway")
    _, env = sources.kubernetes_launch(kustomization, "gateway")
    ping = float(env["GRIDLINK_PING_INTERVAL_S"])
    spec, annotations = service["spec"], service["metadata"]["annotations"]
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
    assert spec["selector"] == deploy["spec"]["selector"]["matchLabels"]
    (port,) = spec["ports"]  # the OCPP port only: its /metrics is elsewhere
    assert container_port(sources.only_container(deploy), port["targetPort"]) == int(
        env["GRIDLINK_GATEWAY_PORT"])
    aws = "service.beta.kubernetes.io/aws-load-balancer-"
    azure = "service.beta.kubernetes.io/azure-load-balancer-"
    # Health checks on the traffic port's /readyz, as the readiness probe.
    assert annotations[aws + "healthcheck-path"] == "/readyz"
    assert annotations[aws + "healthcheck-port"] == "traffic-port"
    assert annotations[azure + "health-probe-request-path"] == "/readyz"
    assert int(annotations[azure + "tcp-idle-timeout"]) * 60 > 2 * ping
    assert ping * 2 < 350, "AWS NLB closes connections idle for 350 s"
    attributes = dict(a.split("=") for a in annotations[aws + "target-group-attributes"].split(","))
    assert attributes["deregistration_delay.connection_termination.enabled"] == "false"


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
    assert referenced == {"gridlink-rabbitmq", "gridlink-mongodb"}
    dev_secrets = by_kind("overlays/dev", "Secret")
    assert referenced <= set(dev_secrets)
    assert by_kind("overlays/production", "Secret") == {}, "no credentials in the repository"
    operations = (sources.ROOT / "docs" / "operations.md").read_text()
    for name in referenced:
        assert f"create secret generic {name}" in operations


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
