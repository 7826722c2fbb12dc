"""MeterValues (and StopTransaction's transactionData) as documents: one per sampled value.

A document's ``_id`` is a digest of everything that tells one sample from another (station,
connector, transaction, timestamp, value, and measurand, phase, location, context, format
and unit, with the 1.6 defaults filled in), so a resent MeterValues inserts nothing new,
while a SignedData sample beside the Raw one of the same reading is a sample of its own.
The checks of :mod:`transactions.checks` add ``flags``; a value is always kept as its text
(``value``) and, when it is a finite number, as ``value_num``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.ocpp16 import parse_time
from transactions import checks
from transactions.natural_keys import digest

_DEFAULTS = {"context": "Sample.Periodic", "format": "Raw", "location": "Outlet"}
_OPTIONAL = ("phase", "location", "context", "unit", "format")


def _identity(sample: dict[str, Any], measurand: str) -> tuple[Any, ...]:
    """The fields that tell samples of one reading apart, defaults filled in."""
    unit = sample.get("unit") or ("Wh" if measurand.startswith("Energy") else None)
    return (measurand, sample.get("phase"),
            *(sample.get(field) or _DEFAULTS[field] for field in ("location", "context",
                                                                  "format")),
            unit, sample["value"])


def sample_documents(station: str, connector: int, transaction_id: int | None,
                     meter_values: Iterable[dict[str, Any]], received_at: datetime, *,
                     claimed_transaction_id: int | None = None,
                     flags: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One document per sampled value (snake_case input as the ocpp library converts it).

    ``transaction_id`` is the transaction the samples are stored against (None when the
    message named none, or one that is not the station's: then ``claimed_transaction_id``
    keeps the id it named and ``flags`` say why)."""
    extra = list(flags)
    documents = []
    for meter_value in meter_values:
        timestamp = parse_time(meter_value["timestamp"])
        for sample in meter_value.get("sampled_value", []):
            measurand = sample.get("measurand") or checks.ENERGY_REGISTER
            raw = sample["value"]
            number, sample_flags = checks.sample_number(raw, sample.get("format"))
            sample_flags += checks.sample_flags(measurand, number, timestamp, received_at)
            document: dict[str, Any] = {
                "_id": digest(station, connector, transaction_id, claimed_transaction_id,
                              timestamp, *_identity(sample, measurand)),
                "station": station,
                "connector": connector,
                "transaction_id": transaction_id,
                "timestamp": timestamp,
                "measurand": measurand,
                "value": raw,
                "received_at": received_at,
            }
            for field in _OPTIONAL:
                if sample.get(field) is not None:
                    document[field] = sample[field]
            if number is not None:
                document["value_num"] = number
            if claimed_transaction_id is not None:
                document["claimed_transaction_id"] = claimed_transaction_id
            if extra or sample_flags:
                document["flags"] = [*extra, *sample_flags]
            documents.append(document)
    return documents
