"""JSON as OCPP-J requires it: no NaN or Infinity, no duplicate keys, compact output that
never holds a non-JSON number. Part of the codec (:mod:`services.ocpp16` re-exports it), in a
module of its own so that a tool that only parses JSON (``gridlink command``) need not load
the schemas."""

from __future__ import annotations

import decimal
import json
from datetime import datetime
from typing import Any

from services.clock import iso


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str | bytes) -> Any:
    """Parse JSON as OCPP requires: no NaN/Infinity, no duplicate keys."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def dumps(value: Any) -> str:
    """Serialize compactly; refuses NaN so GridLink never sends non-JSON."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
