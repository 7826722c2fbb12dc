"""What a benchmark ran on: cores, memory, CPU, kernel, Python and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata


def _meminfo_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    return 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _rabbitmq_version() -> str:
    try:
        out = subprocess.run(
            ["rabbitmqctl", "version"], capture_output=True, text=True, timeout=15, check=False
        )
        return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def describe() -> dict[str, str]:
    """The machine and software versions, as label -> value."""
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{_meminfo_gib():.1f} GiB",
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "websockets": _version("websockets"),
        "ocpp": _version("ocpp"),
        "pymongo": _version("pymongo"),
        "aio-pika": _version("aio-pika"),
        "SecantusDB": _version("SecantusDB"),
        "uvloop": _version("uvloop"),
        "RabbitMQ": _rabbitmq_version(),
    }


def markdown(info: dict[str, str]) -> str:
    """The description as a markdown bullet list."""
    return "\n".join(f"- {key}: {value}" for key, value in info.items())
