"""The reasons that key the report's connect failures, and which of them are definite."""

from __future__ import annotations

import socket

from simulator.connections import backoff, connect_failure_reason, is_definite


def test_failure_reasons_are_short_and_stable() -> None:
    assert connect_failure_reason(ConnectionRefusedError()) == "connection refused"
    assert connect_failure_reason(TimeoutError()) == "timeout"
    assert connect_failure_reason(socket.gaierror()) == "name resolution failed"
    assert connect_failure_reason(OSError(99, "Cannot assign requested address")) == (
        "Cannot assign requested address"
    )
    assert connect_failure_reason(RuntimeError("x")) == "RuntimeError"


def test_definite_failures_and_backoff() -> None:
    assert is_definite("connection refused") and is_definite("HTTP 404")
    assert not is_definite("timeout") and not is_definite("HTTP 503")
    assert all(0.25 <= backoff(1) <= 1.0 for _ in range(20))
    assert all(15.0 <= backoff(20) <= 30.0 for _ in range(20))
