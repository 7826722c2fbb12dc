"""Each component starts from the very command line and environment its deployment gives it.

Kubernetes (both overlays) and docker compose: `gridlink run <component>` with the container's
environment, pointed at the local RabbitMQ and MongoDB-wire server, answers 200 on /healthz
and /readyz (where the probes ask) and serves /metrics where Prometheus scrapes it (the
gateway on its metrics port, and not on its public OCPP port), the commands service runs the
file server chargers are sent to, and every component exits 0 on SIGTERM. The three
deployments run side by side (each with its own namespace and database), which also keeps the
test short.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.certificates import Pki
from tests.deploy import localise, sources
from tests.helpers import delete_namespace
from tests.processes import Process, free_port, stop_all, wait_until

pytestmark = pytest.mark.integration

COMPOSE_SERVICES = {"gateway": "gateway-1", "authz": "authz", "transactions": "transactions",
                    "commands": "commands", "api": "api"}
DEPLOYMENTS = [f"kubernetes:{k}" for k in sources.KUSTOMIZATIONS if k != "base"] + ["compose"]


def deployment_launch(deployment: str, component: str) -> tuple[list[str], dict[str, str]]:
    if deployment == "compose":
        return sources.compose_launch(COMPOSE_SERVICES[component])
    return sources.kubernetes_launch(deployment.split(":", 1)[1], component)


def test_every_deployment_runs_gridlink_run_component() -> None:
    for deployment in DEPLOYMENTS:
        for component in sources.COMPONENTS:
            argv, _ = deployment_launch(deployment, component)
            assert argv == ["gridlink", "run", component], deployment


async def test_components_start_as_deployed_and_stop_cleanly(
    amqp_url: str, mongo_url: str, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")  # for deployments that mount certificates
    namespaces = {d: f"gldeploy-{uuid.uuid4().hex[:8]}" for d in DEPLOYMENTS}
    started: dict[str, list[Process]] = {d: [] for d in DEPLOYMENTS}
    codes: dict[str, dict[str, int]] = {}
    try:
        for deployment, namespace in namespaces.items():
            logs = tmp_path / deployment.replace(":", "-").replace("/", "-")
            logs.mkdir()
            for component in sources.COMPONENTS:
                argv, env = deployment_launch(deployment, component)
                local = localise.localised(component, env, amqp_url=amqp_url,
                                         mongo_url=mongo_url, namespace=namespace,
                                         port=free_port(), files_port=free_port(), pki=pki)
                started[deployment].append(
                    localise.start_deployed(component, argv, local, logs / f"{component}.log"))
        everything = [c for components in started.values() for c in components]
        await wait_until(everything, "/healthz", timeout=60)
        await wait_until(everything, "/readyz", timeout=60)
        for component in everything:
            assert await component.status("/metrics", component.metrics_port) == 200, component.name
        gateways = [c for c in everything if c.name == "gateway"]
        for gateway in gateways:
            assert gateway.metrics_port != gateway.port, "metrics off the public OCPP port"
            assert await gateway.status("/metrics") == 404
            assert await gateway.status("/readyz", gateway.metrics_port) == 200
        # The file server answers (a download token and an upload token it never handed out).
        commands = [c for c in everything if c.name == "commands"]
        assert all(c.files_port for c in commands)
        token = "t" * 32
        await wait_until(commands, f"/firmware/{token}/no-such-image.bin", method="HEAD",
                                status=404, port=lambda c: c.files_port, timeout=30)
        for component in commands:
            assert await component.status(f"/diagnostics/CP-1/{token}/diag.zip",
                                          component.files_port, method="PUT") == 404
    finally:
        for deployment, components in started.items():
            codes[deployment] = await stop_all(components)
        await asyncio.gather(*(delete_namespace(amqp_url, ns) for ns in namespaces.values()))
    for deployment, components in started.items():
        assert codes[deployment] == {c: 0 for c in sources.COMPONENTS}, (
            deployment, "\n".join(c.output() for c in components))
