"""Who reaches what in the Kubernetes manifests: network policies, the exposed ports, the file
server's public URL, the ingress and the gateway's load balancer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy import sources
from tests.deploy.manifests import container_port, labels_match
from tests.deploy.sources import COMPONENTS, FILES_SERVICE, KUSTOMIZATIONS, by_kind

OVERLAYS = [k for k in KUSTOMIZATIONS if k != "base"]

ANYWHERE = None  # a NetworkPolicy rule without "from"
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
SAME_NAMESPACE = {"podSelector": {}}  # any pod of GridLink's namespace
INGRESS_CONTROLLER = {  # ingress-nginx as its Helm chart installs it
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx",
                                    "app.kubernetes.io/component": "controller"}}}


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
                     port("commands", "GRIDLINK_FILES_PORT"): [file_peer],
                     # FTP straight from the L4 load balancer (or NodePorts): from anywhere.
                     port("commands", "GRIDLINK_FTP_PORT"): [ANYWHERE],
                     **{passive: [ANYWHERE]
                        for passive in sources.passive_ports(envs["commands"]).values()}},
        # The HTTP API: operators' tools in the namespace (every request needs a key).
        "api": {port("api", "GRIDLINK_HTTP_PORT"): [PROMETHEUS],
                port("api", "GRIDLINK_API_PORT"): [SAME_NAMESPACE]},
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
        expected.add(("commands", sources.port_setting(commands, "GRIDLINK_FTP_PORT")))
        expected |= {("commands", p) for p in sources.passive_ports(commands).values()}
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
    from commands.files.uploads import MULTIPART_OVERHEAD

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
             urlsplit(files.firmware_url(base, files.new_token(), "cp-2.4.1.bin")).path]
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


@pytest.mark.parametrize("kustomization", OVERLAYS)
def test_chargers_reach_the_ftp_listener_at_its_public_address(kustomization: str) -> None:
    """FTP's control and passive ports keep their numbers on the way (a passive reply names
    the pod's), a charger's connections all reach one pod, and the CLI in any pod builds
    ftp:// URLs to the public address."""
    from commands.files import rules as files
    from services.settings import Settings

    _, env = sources.kubernetes_launch(kustomization, "commands")
    service = by_kind(kustomization, "Service")["gridlink-commands-ftp"]
    spec = service["spec"]
    deploy = sources.deployment(kustomization, "commands")
    assert spec["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert spec["sessionAffinity"] == "ClientIP"
    assert spec["type"] in ("NodePort", "LoadBalancer")
    if spec["type"] == "LoadBalancer":
        assert spec["externalTrafficPolicy"] == "Local", "the affinity needs client addresses"
    container = sources.only_container(deploy)
    ports = {p["name"]: p for p in spec["ports"]}
    passive = sources.passive_ports(env)
    assert set(ports) == {"ftp", *passive}
    for name, number in passive.items():
        assert container_port(container, ports[name]["targetPort"]) == number
        outside = ports[name].get("nodePort", ports[name]["port"])
        assert outside == number, "a passive port must keep its number end to end"
    assert container_port(container, ports["ftp"]["targetPort"]) == int(env["GRIDLINK_FTP_PORT"])
    settings = Settings(**{key[len("GRIDLINK_"):].lower(): value for key, value in env.items()
                           if key.startswith("GRIDLINK_FTP_")})
    base = urlsplit(files.public_base_url(settings, settings.ftp_schemes[0]))
    assert base.hostname == env["GRIDLINK_FTP_PUBLIC_HOST"]
    assert base.port == ports["ftp"].get("nodePort", ports["ftp"]["port"])
    for component in COMPONENTS:  # the CLI hands out ftp:// URLs from any pod
        other = sources.kubernetes_launch(kustomization, component)[1]
        assert other["GRIDLINK_FTP_PUBLIC_HOST"] == env["GRIDLINK_FTP_PUBLIC_HOST"]


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


