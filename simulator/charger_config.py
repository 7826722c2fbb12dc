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
    transaction_message_attempts: int = 3  # TransactionMessageAttempts
    transaction_message_retry_s: int = 60  # TransactionMessageRetryInterval
    script: str = "session"  # "session", "authorize" or "heartbeat"
    jitter: bool = False  # random first-session delay and session lengths (desynchronises a fleet)
    # --- security (OCPP 1.6 Security Whitepaper ed. 2) ---
    authorization_key: str | None = None  # the HTTP Basic password (profiles 1 and 2)
    security_profile: int = 0  # 0: none; 1-3 as in the whitepaper's section 2
    cpo_name: str | None = None  # CpoName: the O of the CSRs it sends (A02.FR.13)
    certificate_cn: str | None = None  # the CN of its CSRs (None: its id)
    central_system_roots: str = ""  # PEM: its CentralSystemRootCertificates (--ca-file)


__all__ = ["ChargerConfig"]
