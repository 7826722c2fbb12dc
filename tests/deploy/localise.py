"""Run a GridLink component exactly as a deployment file says, against local backends.

The command line is the container's, with ``gridlink`` resolved to this environment's console
script. The environment is the container's and nothing else (plus PATH), except the values
that must point at this machine: broker and database URLs, a namespace and database of the
test's own, and free ports instead of 9000/9100/9180 (several deployments' components run side
by side, next to other engineers' tests). PYTHONPATH is this checkout, so the console script
runs the code under test even when it belongs to a virtualenv installed from another checkout
(a git worktree sharing one). Starting, probing and stopping the process is
:mod:`tests.processes`' job.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tests.certificates import Pki
from tests.deploy import sources
from tests.processes import Process, free_port, start

LOCAL_KEYS = {"GRIDLINK_AMQP_URL", "GRIDLINK_MONGO_URL", "GRIDLINK_NAMESPACE", "GRIDLINK_MONGO_DB",
              "GRIDLINK_GATEWAY_PORT", "GRIDLINK_GATEWAY_METRICS_PORT", "GRIDLINK_HTTP_PORT",
              "GRIDLINK_FILES_PORT", "GRIDLINK_TLS_CERT_FILE", "GRIDLINK_TLS_KEY_FILE",
              "GRIDLINK_TLS_CLIENT_CA_FILE", "GRIDLINK_API_PORT"}


def gridlink_executable() -> str:
    """The `gridlink` console script of the environment running the tests."""
    beside = Path(sys.executable).parent / "gridlink"
    found = str(beside) if beside.exists() else shutil.which("gridlink")
    assert found, "the gridlink console script is not installed (pip install -e .)"
    return found


def localised(component: str, env: dict[str, str], *, amqp_url: str, mongo_url: str,
              namespace: str, port: int, files_port: int, metrics_port: int | None = None,
              pki: Pki | None = None, **overrides: str) -> dict[str, str]:
    """The deployment's environment, pointed at local backends (see the module docstring).

    ``port`` replaces the probe port; ``metrics_port`` the gateway's metrics port when the
    deployment gives it one (default: a free port); ``files_port`` the commands' file server.
    """
    local = dict(env)
    local["GRIDLINK_AMQP_URL"] = amqp_url
    if "GRIDLINK_MONGO_URL" in env:  # the gateway has none, and must work without
        local["GRIDLINK_MONGO_URL"] = mongo_url
    local["GRIDLINK_NAMESPACE"] = namespace
    local["GRIDLINK_MONGO_DB"] = namespace.replace("-", "_")
    local[sources.PROBE_PORT_SETTING[component]] = str(port)
    if sources.port_setting(env, "GRIDLINK_GATEWAY_METRICS_PORT"):  # 0: on the OCPP port
        local["GRIDLINK_GATEWAY_METRICS_PORT"] = str(metrics_port or free_port())
    local["GRIDLINK_FILES_PORT"] = str(files_port)  # commands' file server, default 9180
    local["GRIDLINK_API_PORT"] = str(free_port())  # the HTTP API's, default 8080
    # Certificates the deployment mounts from Secrets: the test session's instead.
    mounted = {"GRIDLINK_TLS_CERT_FILE": lambda p: p.server.cert,
               "GRIDLINK_TLS_KEY_FILE": lambda p: p.server.key,
               "GRIDLINK_TLS_CLIENT_CA_FILE": lambda p: p.charger_ca.cert}
    for key, test_file in mounted.items():
        if env.get(key):
            assert pki is not None, f"{component} needs certificates ({key}): pass pki="
            local[key] = str(test_file(pki))
    local.update(overrides)
    changed = {k for k in local if local[k] != env.get(k)} - set(overrides)
    assert changed <= LOCAL_KEYS, changed
    return local


def start_deployed(component: str, argv: list[str], env: dict[str, str], log: Path) -> Process:
    """Start the container's command line with its (localised) environment."""
    assert argv[0] == "gridlink", argv
    port = sources.port_setting(env, sources.PROBE_PORT_SETTING[component])
    metrics_port = sources.port_setting(env, sources.METRICS_PORT_SETTING[component]) or port
    files_port = sources.port_setting(env, "GRIDLINK_FILES_PORT") if component == "commands" \
        else None
    return start(component, [gridlink_executable(), *argv[1:]],
                 {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                  "PYTHONPATH": str(sources.ROOT), **env}, log,
                 port=port, metrics_port=metrics_port, files_port=files_port or None)
