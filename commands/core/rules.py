"""Core-profile rules without I/O: what a command must satisfy before it is sent, and what a
connector status proves about a requested availability."""

from __future__ import annotations

from typing import Any

from services.errors import Refusal


def availability_confirmed(requested: str, status: str) -> bool:
    """Does a connector status show the requested availability?"""
    return (status == "Unavailable") == (requested == "Inoperative")


def remote_start_problem(payload: dict[str, Any]) -> Refusal | None:
    """connectorId > 0 and a charging profile only as TxProfile without transactionId
    (§5.11)."""
    if payload.get("connectorId") == 0:
        return ("PropertyConstraintViolation", "connectorId must be > 0")
    profile = payload.get("chargingProfile")
    if profile is not None:
        if profile.get("chargingProfilePurpose") != "TxProfile":
            return ("PropertyConstraintViolation",
                    "a RemoteStartTransaction profile must be a TxProfile")
        if "transactionId" in profile:
            return ("PropertyConstraintViolation",
                    "a RemoteStartTransaction profile has no transactionId")
    return None


def remote_stop_problem(transaction: dict[str, Any] | None, transaction_id: int,
                        station: str) -> Refusal | None:
    """The transaction must be known, on that station, and still active."""
    if transaction is None or transaction["station"] != station:
        return ("UnknownTransaction", f"no transaction {transaction_id} on {station}")
    if not transaction.get("active"):
        return ("TransactionStopped", f"transaction {transaction_id} has already stopped")
    return None


def unlock_problem(payload: dict[str, Any]) -> Refusal | None:
    if payload["connectorId"] <= 0:
        return ("PropertyConstraintViolation", "connectorId must be > 0")
    return None
