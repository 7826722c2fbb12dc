"""The API's Prometheus metrics (served on GRIDLINK_HTTP_PORT with the probes). Labels are
route templates, methods and status codes: never a station id or a key."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("gridlink_api_requests_total", "API requests, by route template, method "
                   "and status code.", ["route", "method", "code"])
REQUEST_SECONDS = Histogram("gridlink_api_request_seconds", "API request duration, by route "
                            "template.", ["route"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
REFUSALS = Counter("gridlink_api_refusals_total", "API requests refused for their "
                   "credentials, by reason (missing, invalid, revoked, scope).", ["reason"])
COMMANDS = Counter("gridlink_api_commands_total", "Commands sent through the API, by action "
                   "and outcome (sent, replayed, invalid, failed).", ["action", "outcome"])
AUDIT_FAILURES = Counter("gridlink_api_audit_failures_total",
                         "Audit records that could not be written (logged instead).")
