"""The time: now, in UTC, and as OCPP prints it. Parsing a charger's timestamps belongs to
the codec (:func:`services.ocpp16.parse_time`); this module imports nothing heavy, so that
tools that only read the registries (``gridlink stations list``) need not load the codec."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """UTC timestamp as OCPP prints it: 2026-11-23T20:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)
