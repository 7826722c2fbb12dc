"""GridLink configuration: every setting, read once from ``GRIDLINK_*`` in the entry point.

Nothing in GridLink reads the environment except :func:`load_settings`; the resulting
:class:`Settings` object is passed down to whatever needs it.
"""

from __future__ import annotations

import os
import socket
import uuid

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from services.errors import ConfigurationError
from services.webhook_settings import WebhookSettings


def _default_instance() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class Settings(WebhookSettings):
    """All settings of all components; each component uses the ones it needs (the webhook
    worker's, ``GRIDLINK_WEBHOOK_*``, are in :mod:`services.webhook_settings`)."""

    model_config = SettingsConfigDict(env_prefix="GRIDLINK_", extra="ignore")

    # --- where things are -------------------------------------------------------------
    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL (amqp:// or amqps://)."
    )
    mongo_url: str | None = Field(
        None,
        description="MongoDB URL. Unset: `gridlink run all` starts the embedded SecantusDB.",
    )
    mongo_db: str = Field("gridlink", description="MongoDB database name.")
    mongo_write_concern: str = Field(
        "majority", pattern=r"^(majority|[1-9][0-9]*|[A-Za-z][A-Za-z0-9_-]*)$",
        description="Write concern `w` of every write an answer depends on: `majority` "
        "(a replica set's majority has it; the embedded server counts as a one-node set), a "
        "number of members, or a tag set name. Never 0: a charger deletes a message once "
        "answered. Overrides a `w` in GRIDLINK_MONGO_URL.",
    )
    mongo_journal: bool = Field(
        True, description="Write concern `j`: the database acknowledges a write only once it "
        "is in its on-disk journal, so an answered message survives a crash of the database "
        "(`kill -9`, power loss). false is faster and loses answered messages on a crash "
        "(docs/operations.md, Durability).",
    )
    db_command_stats: bool = Field(
        False, description="Count and time every database command per collection, command "
        "and the message it served (gridlink_service_db_commands_total, "
        "gridlink_service_db_command_seconds; pymongo command monitoring): for benchmarks "
        "and diagnosis, it costs CPU per command.",
    )
    embedded_mongo_port: int = Field(
        27018, description="Port of the embedded SecantusDB that `gridlink run all` starts."
    )
    data_dir: str = Field(".gridlink", description="Where the embedded database keeps its files.")
    namespace: str = Field(
        "gridlink",
        description="Prefix of every exchange and queue name (isolates deployments and tests).",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
    )
    quorum_queues: bool = Field(
        True, description="Declare the service work queues as quorum queues."
    )
    instance: str = Field(
        default_factory=_default_instance,
        description="Name of this process in logs, broker connection names and the pod queue.",
    )

    # --- gateway -------------------------------------------------------------------------
    gateway_host: str = Field("0.0.0.0", description="Gateway listen address.")
    gateway_port: int = Field(9000, description="Gateway port: OCPP, /healthz, /readyz, /metrics.")
    gateway_metrics_port: int | None = Field(
        None, description="Gateway: the port of /metrics (and probes), kept off the public OCPP "
        "port; unset: GRIDLINK_HTTP_PORT; 0 serves /metrics on the OCPP port (public: not "
        "recommended)."
    )
    public_url: str | None = Field(
        None, description="URL chargers use (printed at start-up); default ws://HOST:PORT/ocpp."
    )
    max_frame_bytes: int = Field(1 << 20, description="Largest accepted WebSocket frame.")
    max_station_id_length: int = Field(48, description="Longest accepted charge point identity.")
    connect_timeout_s: float = Field(
        5.0, description="How long a handshake waits for authz to admit the station."
    )
    admission_window_ms: float = Field(
        2.0, description="Handshakes arriving within this window are admitted by authz in "
        "one question (one message, one database read)."
    )
    gateway_max_backlog: int = Field(
        1000, ge=1, description="A gateway refuses new connections (503, Retry-After) while "
        "this many charger calls wait for the services' answer and handshakes for authz's: a "
        "reconnect storm is taken at the speed the back end answers, not queued until every "
        "charger's BootNotification times out."
    )
    bind_channels: int = Field(
        8, ge=1, description="AMQP channels a gateway uses for per-charger bindings in parallel."
    )
    ping_interval_s: float | None = Field(
        60.0, description="WebSocket ping interval (None disables pings)."
    )
    edge_heartbeat: bool = Field(
        True, description="Answer Heartbeat at the gateway and record last-seen asynchronously."
    )
    drain_batch_size: int = Field(
        500, description="On SIGTERM, chargers closed per batch (code 1012) so they reconnect."
    )
    drain_batch_interval_s: float = Field(1.0, description="Pause between drain batches.")
    backend_health_ttl_s: float = Field(
        15.0, description="A service's 'database unreachable' report counts this long."
    )

    # --- TLS (the gateway's wss://, the file server's https://) ---------------------------
    tls_cert_file: str | None = Field(
        None, description="PEM certificate (chain) of GridLink's listeners; with "
        "GRIDLINK_TLS_KEY_FILE the gateway serves wss:// and the file server https://. "
        "Reloaded when the file changes.")
    tls_key_file: str | None = Field(None, description="PEM private key of the certificate.")
    tls_client_ca_file: str | None = Field(
        None, description="PEM CA certificates that sign chargers' client certificates "
        "(security profile 3): client certificates are requested and verified against them.")
    tls_client_organizations: list[str] = Field(
        default_factory=list, description="Organisation names (O) a charger certificate "
        "must carry, one of them (A00.FR.404); empty: O is not checked.")
    tls_trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses or networks (CIDR) of load balancers "
        "that end TLS: only their GRIDLINK_TLS_CLIENT_CERT_HEADER is believed.")
    tls_client_cert_header: str = Field(
        "X-Forwarded-Client-Cert", description="Header in which a trusted proxy passes the "
        "charger's verified client certificate (PEM, URL-encoded as nginx's "
        "$ssl_client_escaped_cert).")

    # --- who may connect (security profiles, Security Whitepaper ed. 2) -----------------
    allow_security_profile_0: bool = Field(
        False, description="Accept stations of security profile 0 (no authentication at all: "
        "anyone who knows the id can connect as the station). Development only; `make run` "
        "sets it and says so.")
    auth_failures_per_station: int = Field(
        5, ge=1, description="Failed logins of one station within GRIDLINK_AUTH_FAILURE_WINDOW_S "
        "that lock it out for GRIDLINK_AUTH_LOCKOUT_S (its connected charger and remembered "
        "good credentials are not affected).")
    auth_failures_per_peer: int = Field(
        20, ge=1, description="Failed logins from one address within the window that lock "
        "that address out.")
    auth_failure_window_s: float = Field(
        60.0, gt=0, description="Window in which failed logins are counted.")
    auth_lockout_s: float = Field(
        300.0, ge=0, description="How long a station or an address stays locked out.")
    password_checks_concurrency: int = Field(
        2, ge=1, description="authz: password hashes verified at the same time (each costs "
        "~40 ms of CPU and 19 MiB); the rest wait.")
    authorization_key_grace_s: float = Field(
        300.0, ge=0, description="After a station accepts a new AuthorizationKey, how long "
        "its old key is still accepted (ended early by its first connection with the new "
        "one); 0: at once, as A01.FR.03 says.")

    # --- limits per station, retention ----------------------------------------------------
    station_calls_per_s: float = Field(
        20.0, gt=0, description="gateway: CALLs a station may send per second on average; "
        "beyond it (and the burst) the gateway reads its next frame later (no error).")
    station_call_burst: int = Field(
        200, ge=1, description="gateway: CALLs a station may send at once before "
        "GRIDLINK_STATION_CALLS_PER_S applies (a charger flushing its offline queue).")
    station_call_wait_s: float = Field(
        30.0, gt=0, description="gateway: how long a CALL a station sends before its previous "
        "one is answered waits for that answer (one outstanding CALL, OCPP-J 1.6 §4.1.1); "
        "then it is forwarded anyway (never refused).")
    max_data_transfer_bytes: int = Field(
        65536, ge=0, description="authz: the largest DataTransfer `data` (UTF-8 bytes) "
        "stored; a larger one is answered Rejected and only its size is kept.")
    retention_status_events_days: float = Field(
        90, ge=0, description="Days the connector status history (status_events) is kept; "
        "0 keeps it forever. The latest status of each connector is always kept.")
    retention_meter_values_days: float = Field(
        0, ge=0, description="Days meter values are kept; 0 (default) keeps them forever "
        "(they are billing evidence).")
    retention_data_transfers_days: float = Field(
        90, ge=0, description="Days DataTransfer records are kept; 0 keeps them forever.")
    retention_security_events_days: float = Field(
        365, ge=0, description="Days security events are kept; 0 keeps them forever.")

    # --- services ------------------------------------------------------------------------
    http_host: str = Field("0.0.0.0", description="Service /healthz, /readyz, /metrics address.")
    http_port: int = Field(9100, description="Service /healthz, /readyz, /metrics port.")
    prefetch: int = Field(64, description="Unacknowledged broker messages per service consumer.")
    accept_unknown_stations: bool = Field(
        False, description="Register an unknown charge point on its first connect instead of 404."
    )
    heartbeat_interval_s: int = Field(
        300, description="Heartbeat interval returned in BootNotification.conf."
    )
    default_registration: str = Field(
        "Accepted",
        description="Registration status of stations added without one.",
        pattern="^(Accepted|Pending|Rejected)$",
    )
    data_transfer_vendors: list[str] = Field(
        default_factory=list,
        description="vendorIds whose DataTransfer is answered Accepted (others: UnknownVendorId;"
        " all are stored).",
    )
    transaction_id_block: int = Field(
        100, description="Transaction ids reserved per allocation round trip."
    )
    command_timeout_s: float = Field(
        60.0, description="Default deadline for a command without its own timeout."
    )
    files_host: str = Field("0.0.0.0", description="commands: file server address.")
    files_port: int = Field(
        9180, description="commands: HTTP port where chargers upload diagnostics and download "
        "firmware (0 disables the file server)."
    )
    files_public_url: str | None = Field(
        None, description="Base URL chargers use for the file server "
        "(default http://HOST:FILES_PORT, https:// when GRIDLINK_TLS_CERT_FILE is set)."
    )
    max_upload_bytes: int = Field(
        100 << 20, description="Largest diagnostics or log upload accepted by the file server."
    )
    files_download_window_s: float = Field(
        86400.0, gt=0, description="commands: a firmware download URL (its download token) "
        "stays valid this long after the retrieve date, plus retries x retryInterval."
    )
    files_request_timeout_s: float = Field(
        3600.0, gt=0, description="commands: the longest one file server request may take, "
        "body included (3600 s: 100 MiB at 233 kbit/s); then 408 and the connection closes."
    )
    files_idle_timeout_s: float = Field(
        60.0, gt=0, description="commands: the longest the file server waits for a request's "
        "headers (from the connection or the previous answer) or between two reads or writes "
        "of a body; then the connection closes (408 when an upload stalls)."
    )
    ftp_port: int = Field(
        0, ge=0, description="commands: port of the file server's FTP and FTPS (explicit TLS, "
        "AUTH TLS) listener, for chargers that transfer files only that way (0: none).")
    ftp_passive_ports: str = Field(
        "30100-30109", pattern=r"^\d{1,5}-\d{1,5}$", description="commands: the FTP data "
        "connections' ports (passive mode), FIRST-LAST: one transfer at a time each; open "
        "them with GRIDLINK_FTP_PORT on the firewall or load balancer.")
    ftp_public_host: str | None = Field(
        None, description="commands: the FTP server's address as chargers reach it, in the "
        "ftp:// and ftps:// URLs they are given and in passive-mode replies (a name is "
        "resolved once at start-up); default: GRIDLINK_FILES_HOST (127.0.0.1 for 0.0.0.0).")
    ftp_public_port: int | None = Field(
        None, description="commands: the FTP control port as chargers reach it (a NodePort, "
        "a mapped port); default: GRIDLINK_FTP_PORT. Passive ports are never remapped.")
    ftp_protocols: list[str] | None = Field(
        None, description="commands: what the FTP listener accepts, [\"ftp\"], [\"ftps\"] "
        "(plain logins refused: TLS required on control and data connections) or both; "
        "default: ftps only with GRIDLINK_TLS_CERT_FILE, ftp only without.")
    charger_ca_cert_file: str | None = Field(
        None, description="commands: PEM certificate of GridLink's own charger CA; with "
        "GRIDLINK_CHARGER_CA_KEY_FILE, chargers' SignCertificate CSRs are signed by it and "
        "sent back with CertificateSigned. Unset: CSRs wait for an external CA "
        "(`gridlink certificates pending`, `gridlink certificates sign`).")
    charger_ca_key_file: str | None = Field(
        None, description="commands: PEM private key (unencrypted) of the charger CA.")
    charger_cert_days: int = Field(
        365, ge=1, description="commands: validity in days of the charger certificates the "
        "charger CA issues (never beyond the CA certificate's own expiry).")
    profile_sends_per_s: float = Field(
        5.0, description="Rate limit of SetChargingProfile sends by site load management."
    )
    store_outage_grace_s: float = Field(
        5.0, description="MongoDB failures must persist this long before a service reports "
        "the database unreachable (and gateways close chargers)."
    )
    health_report_interval_s: float = Field(
        5.0, description="How often services publish their database health to the gateways."
    )
    shutdown_grace_s: float = Field(
        20.0, description="Time for in-flight work to finish after SIGTERM."
    )
    log_level: str = Field("INFO", description="Log level.")

    # --- the operator HTTP API (api/) -------------------------------------------------------
    api_host: str = Field("0.0.0.0", description="api: HTTP API listen address.")
    api_port: int = Field(8080, description="api: HTTP API port (/api/v1, /docs, "
                          "/openapi.json); probes and /metrics are on GRIDLINK_HTTP_PORT.")
    api_page_size: int = Field(50, ge=1, description="api: items per page of a list "
                               "without ?limit=.")
    api_max_page_size: int = Field(500, ge=1, description="api: the largest ?limit= of a "
                                   "list (a larger one is refused with 422).")
    api_max_wait_s: float = Field(60.0, gt=0, le=600, description="api: the longest "
                                  "?wait= of a command request (a longer one is refused).")
    api_idempotency_hours: float = Field(24.0, gt=0, description="api: how long an "
                                         "Idempotency-Key is remembered.")
    api_max_firmware_bytes: int = Field(
        256 * 1024 * 1024, ge=1, description="api: the largest firmware image PUT "
        "/api/v1/firmware/files/{name} stores (a larger one is refused with 413).")
    retention_api_audit_days: float = Field(
        90, ge=0, description="api: days the audit trail of API requests (api_audit) is "
        "kept; 0 keeps it forever.")

    @field_validator("tls_cert_file", "tls_key_file", "tls_client_ca_file",
                     "charger_ca_cert_file", "charger_ca_key_file", "public_url",
                     "ftp_public_host", "ftp_public_port", "ftp_protocols", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """A deployment sets every variable; an empty one means "not configured"."""
        return None if value == "" else value

    @property
    def gateway_probe_port(self) -> int:
        """The gateway's port for /metrics and probes: GRIDLINK_GATEWAY_METRICS_PORT, else
        GRIDLINK_HTTP_PORT; 0 means /metrics on the OCPP port."""
        if self.gateway_metrics_port is None:
            return self.http_port
        return self.gateway_metrics_port

    @property
    def tls(self) -> bool:
        """Do GridLink's listeners serve TLS (a certificate and its key are configured)?"""
        return bool(self.tls_cert_file and self.tls_key_file)

    @field_validator("ftp_protocols")
    @classmethod
    def _known_ftp_protocols(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        protocols = [protocol.lower() for protocol in value]
        if not protocols or set(protocols) - {"ftp", "ftps"}:
            raise ValueError("ftp_protocols: a list of \"ftp\" and \"ftps\"")
        return protocols

    @field_validator("ftp_passive_ports")
    @classmethod
    def _passive_range(cls, value: str) -> str:
        first, last = (int(port) for port in value.split("-"))
        if not 1024 <= first <= last <= 65535:
            raise ValueError("ftp_passive_ports: FIRST-LAST with 1024 <= FIRST <= LAST <= 65535")
        return value

    @property
    def passive_ports(self) -> range:
        """GRIDLINK_FTP_PASSIVE_PORTS as a range."""
        first, last = (int(port) for port in self.ftp_passive_ports.split("-"))
        return range(first, last + 1)

    @property
    def ftp_schemes(self) -> tuple[str, ...]:
        """What the FTP listener accepts: GRIDLINK_FTP_PROTOCOLS, or ftps with a certificate
        and ftp without (as the HTTP file server serves https only with one); () without
        an FTP listener."""
        if self.ftp_port == 0:
            return ()
        if self.ftp_protocols is not None:
            return tuple(p for p in ("ftp", "ftps") if p in self.ftp_protocols)
        return ("ftps",) if self.tls else ("ftp",)

    @property
    def charger_ca(self) -> bool:
        """Does GridLink sign chargers' CSRs itself (its charger CA is configured)?"""
        return bool(self.charger_ca_cert_file and self.charger_ca_key_file)


def embedded_mongo_url(port: int) -> str:
    """The URL of the embedded server on ``port`` (``gridlink run all`` starts it).

    Retryable writes are off: the embedded server's bookkeeping for them slows every write
    once thousands ran, and it is a single node anyway."""
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"


def effective_mongo_url(settings: Settings) -> str:
    """GRIDLINK_MONGO_URL, or the embedded server's URL when it is unset."""
    if settings.mongo_url:
        return settings.mongo_url
    return embedded_mongo_url(settings.embedded_mongo_port)


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment once; raise ConfigurationError with one line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigurationError(
            f"invalid setting GRIDLINK_{where.upper()}: {first['msg']}"
        ) from None


def environment_with(**changes: object) -> dict[str, str]:
    """The process environment plus ``GRIDLINK_*`` values for a child process."""
    env = dict(os.environ)
    for key, value in changes.items():
        env[f"GRIDLINK_{key.upper()}"] = "" if value is None else str(value)
    return env
