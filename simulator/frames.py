"""OCPP-J 1.6 frames for the simulator: payloads from the ``ocpp`` dataclasses, JSON, schemas.

Outgoing payloads are built from ``ocpp.v16.call`` / ``ocpp.v16.call_result`` dataclasses and
turned into camelCase JSON objects by :func:`to_payload`, a cached field-name translation
(the library's ``snake_to_camel_case`` rules, computed once per class) that is several times
cheaper than ``dataclasses.asdict`` + key rewriting on every message.  Received texts are
parsed strictly by :func:`decode` (NaN and Infinity are not JSON): :class:`FrameError`.

Schema checks use the ``ocpp`` library's cached ``Draft4Validator`` instances; :func:`check`
maps the first failed rule to an OCPP-J 1.6 error code (§4.2.3, table 7: "Valid Error Codes";
the library itself answers with 2.0 spellings) and raises :class:`PayloadError`.  The reading
is GridLink's own, so the simulator and the system it tests agree::

    type, maxLength, format                   -> TypeConstraintViolation       (1)
    required, minItems, maxItems              -> OccurenceConstraintViolation  (2)
    additionalProperties; not a JSON object   -> FormationViolation            (3)
    anything else: enum, minimum, maximum,    -> PropertyConstraintViolation   (4)
    pattern, multipleOf, ...

1. "at least one of the fields violates data type constraints": in 1.6 a field's data type
   includes its length and form (a ``CiString20Type`` is a string of 20 characters, core
   §7.15; a ``dateTime`` is in ISO 8601 notation, core §3.15), so a 21-character idTag or an
   unparsable timestamp violates its type just as ``"somestring": 12`` does.  (The library's
   validators have no format checker, so ``format`` does not fail here today; the rule is
   mapped so that it is reported correctly when one is used.)
2. "at least one of the fields violates occurence constraints" (the spec's spelling): a
   field, or an array's elements, occur too few or too many times.
3. "syntactically incorrect or not conform the PDU structure for Action": a field the PDU
   does not have, or a payload that is not a JSON object.
4. "syntactically correct but at least one field contains an invalid value": the value has
   the right type but is not one the field allows.

When several rules fail, the shallowest field is reported; on one field ``type`` comes before
``required``, ``additionalProperties`` and the item counts, and those before the rest (a
value of the wrong type also fails its enum or pattern: the type is the cause).

The errorDescription of a CALLERROR the simulator sends is bounded at
:data:`MAX_ERROR_DESCRIPTION` (512) characters: the spec sets no limit ("should be filled in
if possible"), but a schema message quotes the offending value, which may be long; GridLink
uses the same bound.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft4Validator
from ocpp.charge_point import snake_to_camel_case
from ocpp.messages import get_validator

from simulator.errors import FrameError, PayloadError

CALL, CALLRESULT, CALLERROR = 2, 3, 4

#: The longest errorDescription sent in a CALLERROR (the spec sets no limit; GridLink's bound).
MAX_ERROR_DESCRIPTION = 512

#: Schemas that need exact decimals (``multipleOf: 0.1``), as the ``ocpp`` library notes.
_DECIMAL_SCHEMAS = frozenset(
    {
        (CALL, "SetChargingProfile"),
        (CALL, "RemoteStartTransaction"),
        (CALLRESULT, "GetCompositeSchedule"),
    }
)

_field_names: dict[type, tuple[tuple[str, str], ...]] = {}


def _names(cls: type) -> tuple[tuple[str, str], ...]:
    names = _field_names.get(cls)
    if names is None:
        names = tuple(
            (f.name, next(iter(snake_to_camel_case({f.name: None}))))
            for f in dataclasses.fields(cls)
        )
        _field_names[cls] = names
    return names


def to_payload(value: Any) -> Any:
    """Convert an ``ocpp`` dataclass (recursively) to a camelCase JSON value, dropping Nones.

    Plain dicts are taken to be camelCase JSON already and are copied as they are.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for name, camel in _names(type(value)):
            item = getattr(value, name)
            if item is not None:
                out[camel] = to_payload(item)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [to_payload(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: to_payload(v) for k, v in value.items() if v is not None}
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_call(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    """``[2, id, action, payload]`` as compact JSON text."""
    return _dumps([CALL, unique_id, action, payload])


def encode_result(unique_id: str, payload: dict[str, Any]) -> str:
    """``[3, id, payload]`` as compact JSON text."""
    return _dumps([CALLRESULT, unique_id, payload])


def encode_error(
    unique_id: str, code: str, description: str = "", details: dict[str, Any] | None = None
) -> str:
    """``[4, id, code, description, details]`` as compact JSON text.

    ``description`` is cut to :data:`MAX_ERROR_DESCRIPTION` characters.
    """
    description = description[:MAX_ERROR_DESCRIPTION]
    return _dumps([CALLERROR, unique_id, code, description, details or {}])


def _reject_constant(name: str) -> float:
    raise FrameError(f"{name} is not JSON")


def decode(text: str | bytes) -> list[Any]:
    """Parse one OCPP-J frame; raise :class:`FrameError` if it is not a JSON array with an id."""
    try:
        frame = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
        raise FrameError("not an OCPP-J array [type, id, ...]")
    return frame


def validator(message_type: int, action: str) -> Draft4Validator:
    """The ``ocpp`` library's cached 1.6 validator for a CALL or CALLRESULT of ``action``."""
    if (message_type, action) in _DECIMAL_SCHEMAS:
        return get_validator(message_type, action, "1.6", parse_float=decimal.Decimal)
    return get_validator(message_type, action, "1.6")


#: The 1.6 error code of each failed schema rule (the table in the module docstring);
#: rules not listed give PropertyConstraintViolation.
_CODES = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",
    "format": "TypeConstraintViolation",
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "additionalProperties": "FormationViolation",
}


# A value of the wrong type also fails its enum/pattern: report the type first.
_PRIORITY = {"type": 0, "required": 1, "additionalProperties": 2, "minItems": 3, "maxItems": 3}


def check(message_type: int, action: str, payload: Any) -> None:
    """Validate a payload against the 1.6 schema; raise :class:`PayloadError` with a 1.6 code."""
    if not isinstance(payload, dict):
        raise PayloadError("FormationViolation", f"{action}: payload must be a JSON object")
    schema = validator(message_type, action)
    candidate = payload
    if (message_type, action) in _DECIMAL_SCHEMAS:
        candidate = json.loads(_dumps(payload), parse_float=decimal.Decimal)
    errors = sorted(
        schema.iter_errors(candidate),
        key=lambda e: (len(e.absolute_path), _PRIORITY.get(str(e.validator), 9), str(e.validator)),
    )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "payload"
        code = _CODES.get(str(first.validator), "PropertyConstraintViolation")
        raise PayloadError(code, f"{action}: {where}: {first.message}")


def is_valid(message_type: int, action: str, payload: Any) -> bool:
    """True when ``payload`` passes the 1.6 schema of ``action``."""
    try:
        check(message_type, action, payload)
    except PayloadError:
        return False
    return True


def timestamp(epoch_s: float) -> str:
    """An OCPP dateTime for a Unix time: ``2026-11-23T20:00:00.000Z``."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
