"""Command-line errors are one line, never a traceback (no broker or database needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def gridlink(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "gridlink", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["frobnicate"], {}, "invalid choice"),
    (["tags", "add", "T", "--status", "Maybe"], {}, "invalid choice"),
    (["tags", "add", "T", "--expiry", "tomorrow"], {}, "--expiry: not an ISO 8601 date-time"),
    (["command", "CP", "Reset", "[1]"], {}, "JSON_PAYLOAD must be a JSON object"),
    (["command", "CP", "Reset", "{}", "--timeout", "0"], {}, "--timeout must be positive"),
    (["stations", "list"], {"GRIDLINK_NAMESPACE": "bad name!"}, "GRIDLINK_NAMESPACE"),
    (["stations", "list"], {"GRIDLINK_MONGO_URL": "mongodb://127.0.0.1:1/?serverSelection"
                                                  "TimeoutMS=300"}, "cannot reach MongoDB"),
    (["trigger", "CP", "Frobnicate"], {}, "invalid choice"),
    (["certificates", "expiring", "--days", "-1"], {}, "--days must not be negative"),
    (["certificates", "delete", "CP", "--hash", "nope"], {}, "--hash must be a JSON"),
    (["certificates", "install", "CP", "--type", "CentralSystemRootCertificate",
      "/nonexistent/root.pem"], {}, "cannot read /nonexistent/root.pem"),
    (["command", "CP", "Reset", '{"type": "Soft"}'],
     {"GRIDLINK_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}, "cannot reach RabbitMQ"),
])
def test_errors_are_one_line(args: list[str], env: dict[str, str], needle: str) -> None:
    result = gridlink(*args, **env)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gridlink")
    assert needle in lines[0]
