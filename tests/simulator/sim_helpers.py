"""Drive a :class:`~simulator.charger.Charger` by hand: a scripted CSMS with a fake clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from simulator.charger import Charger, ChargerConfig, Validation
from simulator.stats import Stats

WALL = 1_790_000_000.0

#: What the scripted CSMS answers to each charger-initiated action.
ANSWERS: dict[str, dict[str, Any]] = {
    "Authorize": {"idTagInfo": {"status": "Accepted"}},
    "BootNotification": {
        "status": "Accepted",
        "currentTime": "2026-11-23T20:00:00.000Z",
        "interval": 300,
    },
    "DiagnosticsStatusNotification": {},
    "FirmwareStatusNotification": {},
    "LogStatusNotification": {},
    "SecurityEventNotification": {},
    "SignCertificate": {"status": "Accepted"},
    "SignedFirmwareStatusNotification": {},
    "Heartbeat": {"currentTime": "2026-11-23T20:00:00.000Z"},
    "MeterValues": {},
    "StartTransaction": {"transactionId": 42, "idTagInfo": {"status": "Accepted"}},
    "StatusNotification": {},
    "StopTransaction": {},
}


class Bench:
    """A charger, its stats and a clock, plus helpers that play the CSMS."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("charger_id", "CP-1")
        self.stats = Stats(expected_chargers=1)
        self.charger = Charger(
            ChargerConfig(**config), self.stats, Validation("all"), wall_clock=lambda: WALL
        )
        self.now = 0.0
        self.sent: list[list[Any]] = []

    def tick(self, seconds: float = 0.001) -> float:
        self.now += seconds
        return self.now

    def _take(self, frames: list[str]) -> list[list[Any]]:
        parsed = [json.loads(f) for f in frames]
        self.sent.extend(parsed)
        return parsed

    def connect(self, server_certificate: bytes | None = None) -> list[Any]:
        """Connect (over TLS verified with ``server_certificate``); return the BootNotification."""
        frames = self.charger.connected(self.tick(), server_certificate=server_certificate)
        (boot,) = self._take(frames)
        return boot

    def reply(self, frame: list[Any], payload: dict[str, Any] | None = None) -> list[list[Any]]:
        """Answer ``frame`` (a CALL the charger sent) with a CALLRESULT."""
        if payload is None:
            payload = ANSWERS[frame[2]]
        text = json.dumps([3, frame[1], payload])
        return self._take(self.charger.received(text, self.tick()))

    def error(self, frame: list[Any], code: str) -> list[list[Any]]:
        text = json.dumps([4, frame[1], code, "", {}])
        return self._take(self.charger.received(text, self.tick()))

    def csms(self, action: str, payload: dict[str, Any], unique_id: str = "c1") -> list[list[Any]]:
        """Send a CSMS-initiated CALL; return everything the charger sent in answer."""
        text = json.dumps([2, unique_id, action, payload])
        return self._take(self.charger.received(text, self.tick()))

    def drain(self, frames: list[list[Any]]) -> list[list[Any]]:
        """Answer CALLs with the default answers until the charger stops sending; return them."""
        calls: list[list[Any]] = []
        pending = [f for f in frames if f[0] == 2]
        while pending:
            frame = pending.pop(0)
            calls.append(frame)
            pending.extend(f for f in self.reply(frame) if f[0] == 2)
        return calls

    def boot(self, server_certificate: bytes | None = None, **answer: Any) -> list[list[Any]]:
        """Connect, accept the boot, answer the StatusNotifications; return the CALLs after boot."""
        boot = self.connect(server_certificate)
        return self.drain(self.reply(boot, {**ANSWERS["BootNotification"], **answer}))

    def step(self) -> list[Any] | None:
        """The pacer's turn; the CALL sent, if any."""
        frames = self._take(self.charger.step(self.tick()))
        return frames[0] if frames else None


def booted(**config: Any) -> Bench:
    """A booted charger whose wall clock is the real one (certificates made now are valid)."""
    bench = Bench(**config)
    bench.charger.wall_clock = lambda: datetime.now(UTC).timestamp()
    bench.boot()
    return bench


def result_status(frames: list[list[Any]]) -> Any:
    """The status of the CALLRESULT that comes first in ``frames``."""
    result = frames[0]
    assert result[0] == 3, result
    return result[2].get("status")


def sent_calls(frames: list[list[Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The (action, payload) of the CALLs among ``frames``."""
    return [(f[2], f[3]) for f in frames if f[0] == 2]
