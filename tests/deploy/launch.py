"""Start a GridLink component exactly as a deployment file says, against local backends.

The command line is the container's, with ``gridlink`` resolved to this environment's console
script. The environment is the container's and nothing else (plus PATH), except the values
that must point at this machine: broker and database URLs, a namespace and database of the
test's own, and free ports instead of 9000/9100/9180 (several deployments' components run side
by side, next to other engineers' tests).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.deploy import sources
from tests.processes import free_port

LOCAL_KEYS = {"GRIDLINK_AMQP_URL", "GRIDLINK_MONGO_URL", "GRIDLINK_NAMESPACE", "GRIDLINK_MONGO_DB",
              "GRIDLINK_GATEWAY_PORT", "GRIDLINK_GATEWAY_METRICS_PORT", "GRIDLINK_HTTP_PORT",
              "GRIDLINK_FILES_PORT"}


def gridlink_executable() -> str:
    """The `gridlink` console script of the environment running the tests."""
    beside = Path(sys.executable).parent / "gridlink"
    found = str(beside) if beside.exists() else shutil.which("gridlink")
    assert found, "the gridlink console script is not installed (pip install -e .)"
    return found


@dataclass
class Component:
    name: str
    popen: subprocess.Popen[bytes]
    port: int  # /healthz, /readyz: what the probes ask
    metrics_port: int  # /metrics: what Prometheus scrapes
    files_port: int | None  # commands' file server: what chargers reach
    log: Path

    def url(self, path: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}{path}"

    def status(self, path: str, port: int | None = None, method: str = "GET") -> int | None:
        request = urllib.request.Request(self.url(path, port), method=method)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    async def exit_code(self, timeout: float) -> int:
        code = await asyncio.get_running_loop().run_in_executor(None, self.popen.wait, timeout)
        return int(code)


def localised(component: str, env: dict[str, str], *, amqp_url: str, mongo_url: str,
              namespace: str, port: int, files_port: int, metrics_port: int | None = None,
              **overrides: str) -> dict[str, str]:
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
    local.update(overrides)
    changed = {k for k in local if local[k] != env.get(k)} - set(overrides)
    assert changed <= LOCAL_KEYS, changed
    return local


def start(component: str, argv: list[str], env: dict[str, str], log: Path) -> Component:
    assert argv[0] == "gridlink", argv
    port = sources.port_setting(env, sources.PROBE_PORT_SETTING[component])
    metrics_port = sources.port_setting(env, sources.METRICS_PORT_SETTING[component]) or port
    files_port = sources.port_setting(env, "GRIDLINK_FILES_PORT") if component == "commands" \
        else None
    popen = subprocess.Popen(
        [gridlink_executable(), *argv[1:]],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    return Component(component, popen, port, metrics_port, files_port or None, log)


async def wait_until(components: list[Component], path: str, *, timeout: float = 45.0,
                     port: Callable[[Component], int | None] = lambda c: c.port,
                     method: str = "GET", status: int = 200) -> None:
    """Poll ``path`` until every component answers ``status`` (an HTTP probe has no event to
    await); ``port`` picks the port asked, the probe port by default."""
    deadline = time.monotonic() + timeout
    pending = list(components)
    while pending:
        for component in list(pending):
            if component.popen.poll() is not None:
                raise AssertionError(
                    f"{component.name} exited with {component.popen.returncode}:\n"
                    f"{component.output()}")
            answer = await asyncio.get_running_loop().run_in_executor(
                None, component.status, path, port(component), method)
            if answer == status:
                pending.remove(component)
        if pending and time.monotonic() > deadline:
            raise AssertionError(
                f"{[c.name for c in pending]} did not answer {status} on {method} {path}:\n"
                + "\n".join(c.output() for c in pending))
        if pending:
            await asyncio.sleep(0.1)


async def stop_all(components: list[Component], timeout: float = 60.0) -> dict[str, int]:
    for component in components:
        component.terminate()
    codes = {}
    for component in components:
        try:
            codes[component.name] = await component.exit_code(timeout)
        except subprocess.TimeoutExpired:
            component.popen.kill()
            codes[component.name] = -9
    return codes


def metric_value(component: Component, name: str) -> float | None:
    """A label-less sample from the component's /metrics (on its metrics port)."""
    try:
        with urllib.request.urlopen(component.url("/metrics", component.metrics_port),
                                    timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def wait_for_metric(component: Component, name: str, value: float,
                          timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await loop.run_in_executor(None, metric_value, component, name)
        if last == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} is {last}, expected {value}")
