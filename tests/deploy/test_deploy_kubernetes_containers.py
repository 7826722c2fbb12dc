"""What each Kubernetes container runs: its command, settings, ports and probes, how it stops,
how it scales and what it may use (the rendered manifests, ``kubectl kustomize``).
"""

from __future__ import annotations

import math

import pytest

from tests.deploy import manifests, sources, strict_yaml
from tests.deploy.manifests import container_port, labels_match
from tests.deploy.sources import COMPONENTS, KUSTOMIZATIONS, SERVICES, by_kind

# Sizing of a gateway pod (docs/operations.md, "Sizing"): chargers per pod at 1 CPU / 1 GiB.
GATEWAY_CAPACITY = 15000
# Settings no deployment sets: only `gridlink run all` uses the embedded database, and the
# gateway's public URL is only printed.
UNSET_SETTINGS = {"GRIDLINK_EMBEDDED_MONGO_PORT", "GRIDLINK_DATA_DIR", "GRIDLINK_PUBLIC_URL"}
# Settings that depend on an installation's DNS names: each overlay sets them, the base cannot.
OVERLAY_SETTINGS = {"GRIDLINK_FILES_PUBLIC_URL"}



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
    if component != "api":  # only the API process (its webhook worker) holds the key
        needed.discard("GRIDLINK_WEBHOOK_SECRET_KEY")
        assert "GRIDLINK_WEBHOOK_SECRET_KEY" not in env
    missing = needed - set(env)
    assert not missing, f"settings not configured in the ConfigMap/Secrets: {sorted(missing)}"
    # ... and every value is one GridLink accepts.
    settings = sources.settings_of(env, monkeypatch, f"{kustomization} {component}")
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
    if component == "commands":  # and every FTP passive port, one by one
        listening |= sources.passive_ports(env)
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


