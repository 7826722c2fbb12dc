"""Every command example GridLink ships — ``gridlink command --help`` and the docs — passes
the checks a real command gets: the 1.6 schema and every feature's rules, over the
in-memory commands service. An example that names something the station must hold is
refused for exactly that, and for nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from commands.features import FEATURES
from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.repository import CommandRepository
from commands.service import SPEC
from gridlink.command_examples import EXAMPLES
from services import stations
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.ocpp16 import utcnow
from services.router import Router
from tests.helpers import memory_runtime

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: What an example may be refused for: the station holds no such thing (yet).
NEEDS_STATE = {
    "RemoteStopTransaction": "UnknownTransaction",  # transaction 42
    "CancelReservation": "UnknownReservation",  # reservation 7
    "ReserveNow": "UnknownConnector",  # a connector the station reported
    "ClearChargingProfile": "NoMatchingProfile",  # profile 100
    "CertificateSigned": "UnknownCertificateRequest",  # an open CSR for that key
}


def documented() -> list[tuple[str, str, dict[str, Any]]]:
    """(where, action, payload) of every command in docs/*.md: JSON command messages and
    ``gridlink command STATION ACTION 'PAYLOAD'`` lines."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for block in re.findall(r"```json\n(.*?)```", text, re.S):
            for line in block.strip().splitlines():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict) and {"action", "payload"} <= set(message):
                    found.append((page.name, message["action"], message["payload"]))
        for action, payload in re.findall(
                r"gridlink command [A-Za-z0-9_-]+ ([A-Z][A-Za-z]+) '(\{.*?\})'", text):
            found.append((page.name, action, json.loads(payload)))
    return found


async def refusal(action: str, payload: dict[str, Any]) -> str | None:
    runtime = memory_runtime(SPEC)
    hooks = CommandHooks(runtime=runtime, router=Router("commands"))
    lifecycle = Lifecycle(runtime, CommandRepository(runtime.store.db), hooks)
    for _, register in FEATURES:
        register(hooks, lifecycle)
    await stations.add_station(runtime.store.db, "CP001", registration="Accepted",
                               password=None, now=utcnow())
    try:
        await lifecycle.validate(CommandRequest(command_id="example", station="CP001",
                                                action=action, payload=payload))
    except CommandRefused as exc:
        return f"{exc.code}: {exc.description}"
    return None


@pytest.mark.parametrize("action", sorted(EXAMPLES))
async def test_the_help_example_passes_every_check(action: str) -> None:
    problem = await refusal(action, EXAMPLES[action])
    expected = NEEDS_STATE.get(action)
    if expected is None:
        assert problem is None, f"{action}'s example is refused: {problem}"
    else:
        assert problem is not None and problem.startswith(f"{expected}:"), problem


def test_the_docs_hold_commands_to_check() -> None:
    assert len(documented()) >= len(EXAMPLES)


@pytest.mark.parametrize(("where", "action", "payload"), documented(),
                         ids=lambda value: value if isinstance(value, str) else "")
async def test_a_documented_command_passes_every_check(where: str, action: str,
                                                       payload: dict[str, Any]) -> None:
    problem = await refusal(action, payload)
    expected = NEEDS_STATE.get(action)
    if problem is not None and expected is not None and problem.startswith(f"{expected}:"):
        return
    assert problem is None, f"{where}: {action} {json.dumps(payload)} is refused: {problem}"
