"""Prometheus metrics of every component: ``gridlink_<component>_<what>_<unit>``.

Labels are ``component``, ``action``, ``outcome``, ``code``, ``reason``: never a station id
(the cardinality of a fleet would swamp Prometheus).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# gateway
CONNECTIONS = Gauge("gridlink_gateway_connections_open", "Open charger WebSocket connections.")
BACKLOG = Gauge("gridlink_gateway_backlog",
                "Charger calls awaiting a service's answer plus handshakes awaiting admission "
                "(new connections are refused at GRIDLINK_GATEWAY_MAX_BACKLOG).")
CONNECTIONS_TOTAL = Counter(
    "gridlink_gateway_connections_total", "Charger connections by outcome.", ["outcome"]
)
FRAMES = Counter(
    "gridlink_gateway_calls_total", "Charger CALLs received, by action and outcome.",
    ["action", "outcome"],
)
CALLERRORS = Counter(
    "gridlink_gateway_callerrors_total", "CALLERRORs sent to chargers, by code.", ["code"]
)
ROUND_TRIP = Histogram(
    "gridlink_gateway_call_seconds",
    "Charger CALL to answer, through broker and service, by action.",
    ["action"], buckets=_LATENCY_BUCKETS,
)
CSMS_CALLS = Counter(
    "gridlink_gateway_csms_calls_total", "Calls sent to chargers, by action and outcome.",
    ["action", "outcome"],
)
HANDSHAKES_REFUSED = Counter(
    "gridlink_gateway_handshakes_refused_total", "Refused handshakes, by reason.", ["reason"]
)
ADMISSION_BATCH = Histogram(
    "gridlink_gateway_admission_batch_size", "Handshakes admitted per question to authz.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
TLS_HANDSHAKE_FAILURES = Counter(
    "gridlink_gateway_tls_handshake_failures_total",
    "TLS handshakes that failed (no shared version or cipher, untrusted client certificate, "
    "...), by reason.", ["reason"],
)
CALLS_DELAYED = Counter(
    "gridlink_gateway_calls_delayed_total",
    "Charger CALLs held back instead of refused, by reason: rate (beyond "
    "GRIDLINK_STATION_CALLS_PER_S and its burst) or outstanding (sent before the previous "
    "CALL was answered; OCPP-J 1.6 §4.1.1).", ["reason"],
)
UNMATCHED_ANSWERS = Counter(
    "gridlink_gateway_unmatched_answers_total",
    "CALLRESULTs and CALLERRORs from chargers that answer no outstanding CSMS call (dropped).",
)
FRAMES_REFUSED = Counter(
    "gridlink_gateway_frames_refused_total",
    "Charger frames that are no OCPP-J message, by reason: binary (connection closed with "
    "1003), too_deep (nested deeper than the codec allows; FormationViolation).", ["reason"],
)
READY = Gauge("gridlink_ready", "1 when this process reports ready.", ["component"])

# authz: who may connect
LOGINS = Counter(
    "gridlink_authz_logins_total", "Handshakes decided by authz, by outcome (accepted, "
    "unauthorized, locked_out, profile_too_low, certificate_rejected, unknown_station) and the "
    "security profile the connection met.", ["outcome", "profile"],
)
LOCKOUTS = Counter(
    "gridlink_authz_lockouts_total", "Lockouts after repeated failed logins, by kind (station, "
    "peer).", ["kind"],
)
PASSWORD_CHECKS = Counter(
    "gridlink_authz_password_checks_total", "Password checks, by how they were decided "
    "(hashed, remembered, skipped_locked_out).", ["how"],
)

# services
HANDLED = Counter(
    "gridlink_service_calls_total", "Messages handled, by component, action and outcome.",
    ["component", "action", "outcome"],
)
HANDLER_LATENCY = Histogram(
    "gridlink_service_handler_seconds", "Handler time including MongoDB, by action.",
    ["component", "action"], buckets=_LATENCY_BUCKETS,
)
STORE_ERRORS = Counter(
    "gridlink_service_store_errors_total", "MongoDB operations that failed, by component.",
    ["component"],
)
BUS_PUBLISH_FAILURES = Counter(
    "gridlink_bus_publish_failures_total", "Broker publishes that failed or were not confirmed.",
    ["component"],
)
COMMANDS = Counter(
    "gridlink_commands_total", "Commands by action and final status.", ["action", "status"]
)
STORE_BATCH_SPLITS = Counter(
    "gridlink_service_store_batch_splits_total",
    "Coalesced MongoDB batches that failed for a non-transient reason and were retried one "
    "request at a time (only the bad request fails), by component and kind (write, read).",
    ["component", "kind"],
)
HANDLER_FAILURES = Counter(
    "gridlink_service_handler_failures_total",
    "Charger calls whose handling failed for a non-transient reason (a value that cannot be "
    "stored, a bug): answered CALLERROR InternalError and acknowledged, never requeued; by "
    "component, action and reason (exception class, server error code).",
    ["component", "action", "reason"],
)
DB_COMMANDS = Counter(
    "gridlink_service_db_commands_total",
    "Database commands sent (round trips), by component, collection, command and the work "
    "they were sent for (the consumed message's routing key, or other). Only with "
    "GRIDLINK_DB_COMMAND_STATS (services/db_stats.py).",
    ["component", "collection", "command", "work"],
)
DB_COMMAND_SECONDS = Histogram(
    "gridlink_service_db_command_seconds",
    "Database command duration as the client saw it, by component, collection and command. "
    "Only with GRIDLINK_DB_COMMAND_STATS.",
    ["component", "collection", "command"], buckets=_LATENCY_BUCKETS,
)
STORE_BULK_OPS = Histogram(
    "gridlink_service_store_bulk_operations", "Writes coalesced per bulk write, by component.",
    ["component"], buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
ACTIVE_TRANSACTIONS = Gauge(
    "gridlink_transactions_active", "Transactions started and not yet stopped (last count)."
)
TRANSACTIONS_SUPERSEDED = Counter(
    "gridlink_transactions_superseded_total",
    "Transactions closed because a newer StartTransaction came on their connector (their "
    "stop was never seen).",
)
TRANSACTIONS_FLAGGED = Counter(
    "gridlink_transactions_flagged_total",
    "Transactions and meter values stored with a flag for review, by reason (the flag, "
    "transactions/checks.py).", ["reason"],
)
