"""How one simulated charger behaves: :class:`ChargerConfig`, set once per charger."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    """How one simulated charger behaves."""

    charger_id: str
    connectors: int = 1
    id_tag: str = "SIMTAG0001"
    vendor: str = "GridLink"
    model: str = "Simulator"
    firmware: str = "sim-1.0"
    meter_values_per_session: int = 8
    meter_step_wh: int = 250
    call_timeout_s: float = 30.0
    retry_interval_s: float = 10.0
    heartbeat_interval_s: float | None = None  # None: the interval from BootNotification.conf
    meter_interval_s: int = 60  # MeterValueSampleInterval for autonomous transactions
    script: str = "session"  # "session", "authorize" or "heartbeat"
    jitter: bool = False  # random first-session delay and session lengths (desynchronises a fleet)


__all__ = ["ChargerConfig"]
