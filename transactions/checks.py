"""Sanity checks on what chargers report: pure functions returning short flag names.

A check never refuses anything: the charger gets its normal answer (OCPP 1.6 chargers
discard a transaction message after a few errors, and sanity checks must not prevent the
.conf), the values are kept as sent, and the ``flags`` of the stored document say what to
review. Flags of a transaction (``transactions.flags``):

- ``negative_meter_start`` / ``negative_meter_stop``: a meter reading below zero;
- ``meter_stop_below_start``: meterStop < meterStart; both are kept, ``energy_wh`` is None
  (never a negative energy);
- ``start_in_future`` / ``stop_in_future``: a timestamp more than :data:`FUTURE_TOLERANCE`
  after GridLink received it;
- ``stop_before_start``: the stop's timestamp is earlier than the start's;
- ``superseded``: a newer StartTransaction on the same connector closed it (the charger
  never sent its stop; see ``transactions/handlers.py``).

Flags of a meter value (``meter_values.flags``, present only when one applies):

- ``not_finite``: the value reads as NaN or infinity (``"NaN"``, ``"inf"``, ``"1e999"``):
  the text is kept, no number is stored;
- ``not_a_number``: a Raw value that is no decimal number (the text is kept);
- ``negative_value``: below zero, for a measurand that cannot be (not Temperature or
  Power.Factor);
- ``timestamp_in_future``: more than :data:`FUTURE_TOLERANCE` after it was received;
- ``other_station_transaction`` / ``unknown_transaction``: it names a transactionId of
  another station, or one GridLink never gave; it is kept under the sending station with
  ``transaction_id`` None and the id it named in ``claimed_transaction_id``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

FUTURE_TOLERANCE = timedelta(days=1)

NEGATIVE_METER_START = "negative_meter_start"
NEGATIVE_METER_STOP = "negative_meter_stop"
METER_STOP_BELOW_START = "meter_stop_below_start"
START_IN_FUTURE = "start_in_future"
STOP_IN_FUTURE = "stop_in_future"
STOP_BEFORE_START = "stop_before_start"
SUPERSEDED = "superseded"

NOT_FINITE = "not_finite"
NOT_A_NUMBER = "not_a_number"
NEGATIVE_VALUE = "negative_value"
TIMESTAMP_IN_FUTURE = "timestamp_in_future"
OTHER_STATION_TRANSACTION = "other_station_transaction"
UNKNOWN_TRANSACTION = "unknown_transaction"

#: Measurands whose values may be below zero.
SIGNED_MEASURANDS = frozenset({"Temperature", "Power.Factor"})
ENERGY_REGISTER = "Energy.Active.Import.Register"
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def in_future(moment: datetime, received_at: datetime) -> bool:
    """More than :data:`FUTURE_TOLERANCE` after it was received?"""
    return moment - received_at > FUTURE_TOLERANCE


def start_flags(meter_start: int, timestamp: datetime, received_at: datetime) -> list[str]:
    flags = []
    if meter_start < 0:
        flags.append(NEGATIVE_METER_START)
    if in_future(timestamp, received_at):
        flags.append(START_IN_FUTURE)
    return flags


def stop_flags(transaction: dict[str, Any], meter_stop: int, timestamp: datetime,
               received_at: datetime) -> list[str]:
    """Flags of a StopTransaction for its (known) transaction."""
    flags = []
    if meter_stop < 0:
        flags.append(NEGATIVE_METER_STOP)
    if meter_stop < int(transaction["meter_start"]):
        flags.append(METER_STOP_BELOW_START)
    if in_future(timestamp, received_at):
        flags.append(STOP_IN_FUTURE)
    if timestamp < transaction["start_time"]:
        flags.append(STOP_BEFORE_START)
    return flags


#: The most energy a transaction is given, in Wh: a reading beyond it (a sampled value of
#: "1e300" Wh is finite) is kept as sent, but no energy comes of it (BSON holds int64).
MAX_ENERGY_WH = 2**63 - 1


def energy_wh(meter_start: int, meter_end: float) -> int | None:
    """Energy between two register readings in Wh; None when it would be negative or beyond
    :data:`MAX_ENERGY_WH`."""
    difference = meter_end - meter_start
    if not math.isfinite(difference) or not 0 <= difference <= MAX_ENERGY_WH:
        return None
    return min(round(difference), MAX_ENERGY_WH)


def sample_number(raw: str, value_format: str | None) -> tuple[float | None, list[str]]:
    """The number a sampled value holds (None for signed data and non-numbers), and flags."""
    if value_format == "SignedData":
        return None, []
    text = raw.strip()
    if _DECIMAL.fullmatch(text):
        number = float(text)
        return (number, []) if math.isfinite(number) else (None, [NOT_FINITE])
    try:
        number = float(text)
    except ValueError:
        return None, [NOT_A_NUMBER]
    return None, [NOT_FINITE if not math.isfinite(number) else NOT_A_NUMBER]


def sample_flags(measurand: str, number: float | None, timestamp: datetime,
                 received_at: datetime) -> list[str]:
    flags = []
    if number is not None and number < 0 and measurand not in SIGNED_MEASURANDS:
        flags.append(NEGATIVE_VALUE)
    if in_future(timestamp, received_at):
        flags.append(TIMESTAMP_IN_FUTURE)
    return flags


def register_wh(sample: dict[str, Any]) -> float | None:
    """An energy register reading in Wh (kWh converted), or None if it is not one."""
    number = sample.get("value_num")
    if sample.get("measurand") != ENERGY_REGISTER or not isinstance(number, int | float) \
            or sample.get("flags"):
        return None
    unit = sample.get("unit", "Wh")
    if unit == "Wh":
        return float(number)
    if unit == "kWh":
        return float(number) * 1000
    return None
