"""What a schema-valid OCPP 1.6 value must also be for GridLink to store it: integers in
range, JSON nested only so deep (date-times: :func:`services.ocpp16.parse_time`).

The 1.6 JSON schemas say ``"type": "integer"`` and ``"format": "date-time"`` without
bounds, so ``meterStart = 9223372036854775808`` or ``0001-01-01T00:00:00+01:00`` pass them,
and then MongoDB (BSON holds 64-bit integers, dates of years 1-9999) or the date code
(``astimezone`` overflows) throws in a handler. The date-time bound lives in ``parse_time``,
which the schemas' ``date-time`` format uses; the integer bounds here run after the schema.
Both apply to every payload :func:`services.ocpp16.validate` sees - charger CALLs, CSMS
CALLs and the charger's CALLRESULTs - so no service receives a value it cannot keep.

Ranges: 1.6 ``integer`` is the WSDL's ``xs:int`` (32-bit) - connector ids, transaction
ids, reservation ids, request ids, list versions, durations. Meter registers
(``meterStart``, ``meterStop``, in Wh) get 64-bit storage: a lifetime register of a busy DC
charger passes 2^31 Wh (2.1 GWh) within its life, and refusing it would lose a
transaction. They are kept within ±2^62 so that the energy of a transaction (one reading
minus another) fits 64 bits too. An integer written in a ``number`` field (a charging
limit) must fit 64 bits.

A value outside its range breaks its *data type* (it is no 32-bit integer, no
representable dateTime), as a 21-character CiString20 does: TypeConstraintViolation
(OCPP-J 1.6 §4.2.3: "at least one of the fields violates data type constraints").
PropertyConstraintViolation stays for values of the right type that the field does not
allow (an enum value it does not list).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from ocpp.messages import get_validator

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
#: A meter register: stored in 64 bits, with room for the difference of two.
METER = (-(2**62), 2**62 - 1)
#: Integer fields that hold meter registers (Wh).
METER_FIELDS = frozenset({"meterStart", "meterStop"})
RANGES = {"int32": INT32, "int64": INT64, "meter": METER}
#: Deepest JSON nesting a frame may have. The deepest 1.6 payload (a charging schedule's
#: period in SetChargingProfile or GetCompositeSchedule.conf) is 5 levels, 6 with the frame.
MAX_DEPTH = 16


class OutOfRange(ValueError):
    """A schema-valid value GridLink cannot keep; ``where`` is its path in the payload."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Is ``value`` nested deeper than ``limit`` arrays and objects? Iterative (a parsed
    value of any depth is walked without recursion) and stops at the first level too deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


@functools.cache
def _plan(message_type: int, action: str) -> tuple[tuple[tuple[str, ...], str, str], ...]:
    """The payload paths of this schema's integers: (path, a key of :data:`RANGES`, field
    name); ``[]`` in a path means every item."""
    schema = get_validator(message_type, action, "1.6").schema
    found: list[tuple[tuple[str, ...], str, str]] = []

    def walk(node: dict[str, Any], path: tuple[str, ...], name: str) -> None:
        kind = node.get("type")
        if kind == "integer":
            found.append((path, "meter" if name in METER_FIELDS else "int32", name))
        elif kind == "number":
            found.append((path, "int64", name))
        for key, child in (node.get("properties") or {}).items():
            walk(child, (*path, key), key)
        if isinstance(node.get("items"), dict):
            walk(node["items"], (*path, "[]"), name)

    walk(schema, (), "")
    return tuple(found)


def _values(value: Any, path: tuple[str, ...], where: str) -> Iterator[tuple[str, Any]]:
    """The values at ``path`` in ``value`` with their printed location."""
    if not path:
        yield where, value
        return
    head, rest = path[0], path[1:]
    if head == "[]":
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _values(item, rest, f"{where}/{index}")
    elif isinstance(value, dict) and head in value:
        yield from _values(value[head], rest, f"{where}/{head}" if where else head)


def check(message_type: int, action: str, payload: Any) -> None:
    """Raise :class:`OutOfRange` for the first value of a schema-valid ``payload`` that
    GridLink could not store."""
    for path, kind, _ in _plan(message_type, action):
        for where, value in _values(payload, path, ""):
            if not isinstance(value, int) or isinstance(value, bool):
                continue  # a float in a number field: finite, checked elsewhere
            low, high = RANGES[kind]
            if not low <= value <= high:
                what = "a meter register" if kind == "meter" else f"a {kind[3:]}-bit integer"
                raise OutOfRange(where, f"{value} is outside the range of {what} "
                                        f"[{low}, {high}]")
