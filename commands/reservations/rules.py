"""Reservations without I/O (OCPP 1.6 Reservation profile, §3.11 / §5.1 / §5.13): which tag
may use a reservation, which connector may be reserved, and the ReserveNow payload.

The stored reservations and how they end are in :mod:`commands.reservations.repository`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands.station_configuration import Snapshot
from services.ocpp16 import iso

ACTIVE, USED, CANCELLED, EXPIRED, TERMINATED = (
    "active", "used", "cancelled", "expired", "terminated")
STATUSES = (ACTIVE, USED, CANCELLED, EXPIRED, TERMINATED)
#: Connector statuses that end a reservation on it (§5.13 (3)).
ENDING_CONNECTOR_STATUSES = frozenset({"Faulted", "Unavailable"})


def _same_token(a: str | None, b: str | None) -> bool:
    """IdToken is CiString20: compared case-insensitively."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def tag_matches(reservation: dict[str, Any], id_tag: str, parent: str | None) -> bool:
    """May ``id_tag`` (with group ``parent``) use the reservation? Its idTag or its parent
    idTag must match the reservation's idTag or parent idTag (§5.13)."""
    held = (reservation.get("id_tag"), reservation.get("parent_id_tag"))
    return any(_same_token(mine, theirs) for mine in (id_tag, parent) for theirs in held)


@dataclass(frozen=True)
class StationFacts:
    """What GridLink knows about a station's connectors and reservation support."""

    seen_connectors: frozenset[int]  # connectors that sent a StatusNotification
    number_of_connectors: int | None = None  # NumberOfConnectors (GetConfiguration)
    zero_supported: bool | None = None  # ReserveConnectorZeroSupported; None: not known
    profile_supported: bool | None = None  # Reservation in SupportedFeatureProfiles


def facts_from(document: dict[str, Any] | None, seen_connectors: set[int]) -> StationFacts:
    """StationFacts from a stored configuration snapshot and the connectors seen."""
    snapshot = Snapshot.from_document(document)
    number = (snapshot.value("NumberOfConnectors") or "").strip()
    zero = snapshot.value("ReserveConnectorZeroSupported")
    zero_supported = zero.strip().lower() == "true" if zero is not None else None
    if zero is None and "ReserveConnectorZeroSupported" in snapshot.unknown:
        zero_supported = False  # "not set" means not supported (§5.13)
    features = snapshot.features()
    return StationFacts(
        seen_connectors=frozenset(seen_connectors),
        number_of_connectors=int(number) if number.isdigit() else None,
        zero_supported=zero_supported,
        profile_supported=None if features is None else "reservation" in features,
    )


def connector_refusal(station: str, connector: int, facts: StationFacts
                      ) -> tuple[str, str] | None:
    """Why ``connector`` cannot be reserved, as (code, description); None if it can.

    A connector > 0 must exist: it sent a StatusNotification or is within
    NumberOfConnectors. Connector 0 (the whole charge point) is refused only when the
    station's configuration snapshot says ReserveConnectorZeroSupported is false or not set
    (the charger would answer Rejected, §5.13); when it is true, or not known yet, it is
    sent and the charger answers.
    """
    if facts.profile_supported is False:
        return ("NotSupported",
                f"{station} does not list Reservation in SupportedFeatureProfiles")
    if connector < 0:
        return ("PropertyConstraintViolation", "connectorId must be >= 0")
    if connector == 0:
        if facts.zero_supported is False:
            return ("ConnectorZeroNotSupported",
                    f"{station} ReserveConnectorZeroSupported is false or not set; reserve a "
                    "connector > 0")
        return None
    if connector in facts.seen_connectors:
        return None
    if facts.number_of_connectors is not None and connector <= facts.number_of_connectors:
        return None
    return ("UnknownConnector", f"{station} has no connector {connector} (seen: "
            f"{', '.join(map(str, sorted(facts.seen_connectors))) or 'none'})")


def reserve_now_payload(*, connector: int, id_tag: str, expiry: datetime, reservation_id: int,
                        parent_id_tag: str | None) -> dict[str, Any]:
    """A ReserveNow.req payload (camelCase)."""
    payload: dict[str, Any] = {"connectorId": connector, "expiryDate": iso(expiry),
                               "idTag": id_tag, "reservationId": reservation_id}
    if parent_id_tag:
        payload["parentIdTag"] = parent_id_tag
    return payload
