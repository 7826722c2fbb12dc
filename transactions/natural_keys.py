"""Natural keys: what makes a retransmitted message find what its first delivery stored.

Each key is a JSON array of its parts (:func:`encode`), so no part's content can shift the
boundary to the next one: station ``CP|1`` with tag ``T`` and station ``CP`` with tag ``1|T``
have different keys. (Earlier releases joined the parts with ``|``; :func:`legacy_start_key`
still finds what they stored, and a match is always checked field by field.)
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from services.clock import iso


def encode(*parts: object) -> str:
    """The parts as a compact JSON array (datetimes as OCPP prints them)."""
    return json.dumps([iso(p) if isinstance(p, datetime) else p for p in parts],
                      separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(*parts: object) -> str:
    """A fixed-length ``_id`` for a key of many parts (SHA-1 of :func:`encode`)."""
    return hashlib.sha1(encode(*parts).encode()).hexdigest()


def start_key(station: str, connector: int, id_tag: str, timestamp: datetime,
              meter_start: int) -> str:
    """The ``start_key`` of a transaction: a StartTransaction and its retransmissions."""
    return encode(station, connector, id_tag, timestamp, meter_start)


def legacy_start_key(station: str, connector: int, id_tag: str, timestamp: datetime,
                     meter_start: int) -> str:
    """The ambiguous key of earlier releases (only to find what they stored)."""
    return f"{station}|{connector}|{id_tag}|{iso(timestamp)}|{meter_start}"


def same_start(document: dict[str, Any], station: str, connector: int, id_tag: str,
               timestamp: datetime, meter_start: int) -> bool:
    """Is ``document`` the transaction this StartTransaction started (field by field)?"""
    stored = document.get("start_time")
    return (document.get("station") == station and document.get("connector") == connector
            and document.get("id_tag") == id_tag and document.get("meter_start") == meter_start
            and isinstance(stored, datetime) and iso(stored) == iso(timestamp))
