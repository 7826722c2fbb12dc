"""OCPP 1.6-J vocabulary: actions by direction, strict JSON, schema validation with 1.6 codes.

The JSON schemas and cached validators come from the ``ocpp`` library
(``ocpp/v16/schemas``); the mapping of schema failures to error codes is GridLink's own,
because the library answers with 2.0 spellings and a few wrong codes.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import functools
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fastjsonschema
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.charge_point import camel_to_snake_case, remove_nones, snake_to_camel_case
from ocpp.messages import get_validator
from ocpp.v16 import call, call_result

from services import value_bounds
from services.clock import iso, utcnow
from services.errors import (
    FormationViolation,
    NotImplementedError_,
    NotSupported,
    OccurenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    TypeConstraintViolation,
)
from services.strict_json import dumps, loads_strict

CALL, CALLRESULT, CALLERROR = 2, 3, 4

#: CALLs a charge point sends to the CSMS: the core profiles and the security extension's.
CHARGER_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    }
)

#: CALLs the CSMS sends to a charge point: all six feature profiles and the security
#: extension's.
CSMS_ACTIONS = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "InstallCertificate",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SignedUpdateFirmware",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)
KNOWN_ACTIONS = CHARGER_ACTIONS | CSMS_ACTIONS

# Schemas whose decimals need exact parsing (multipleOf 0.1), as the ocpp library notes.
_DECIMAL_SCHEMAS = {
    (CALL, "SetChargingProfile"),
    (CALL, "RemoteStartTransaction"),
    (CALLRESULT, "GetCompositeSchedule"),
}

_TYPE_VALIDATORS = {"type", "maxLength", "format"}  # the field breaks its data type
_OCCURENCE_VALIDATORS = {"required", "minItems", "maxItems"}
_FORMATION_VALIDATORS = {"additionalProperties"}


def parse_time(text: str) -> datetime:
    """Parse an OCPP dateTime (RFC 3339); naive times are taken as UTC.

    ValueError also for a time whose UTC instant leaves years 1-9999
    (``0001-01-01T00:00:00+01:00``): neither Python nor BSON can hold it."""
    if len(text) < 10 or not text[:4].isdigit():
        raise ValueError(f"not a date-time: {text!r}")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside years 1-9999 in UTC") from None
    return moment


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if isinstance(value, str):
        parse_time(value)
    return True


@_FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or ":" in value


def _date_time_ok(value: object) -> bool:
    try:
        _is_date_time(value)
    except ValueError:
        return False
    return True


_FAST_FORMATS = {"date-time": _date_time_ok, "uri": lambda value: ":" in value}


@functools.cache
def _fast_validator(message_type: int, action: str) -> Callable[[Any], Any]:
    """The same schema compiled to Python by fastjsonschema (about 15x faster)."""
    schema = get_validator(message_type, action, "1.6").schema
    return fastjsonschema.compile(schema, formats=_FAST_FORMATS)


@functools.cache
def _validator(message_type: int, action: str) -> Draft4Validator:
    """The library's schema for the action, with date-time and uri formats enforced."""
    if (message_type, action) in _DECIMAL_SCHEMAS:
        schema = get_validator(message_type, action, "1.6", parse_float=decimal.Decimal).schema
    else:
        schema = get_validator(message_type, action, "1.6").schema
    return Draft4Validator(schema, format_checker=_FORMATS)


def _error_for(error: SchemaError, action: str) -> OcppError:
    where = "/".join(str(p) for p in error.absolute_path)
    return _error_for_rule(str(error.validator), where, error.message, action)


def _error_for_rule(rule: str, where: str, message: str, action: str) -> OcppError:
    """The 1.6 error for a failed schema rule."""
    text = f"{action}: {where or 'payload'}: {message}"
    if rule in _TYPE_VALIDATORS:
        return TypeConstraintViolation(text)
    if rule in _OCCURENCE_VALIDATORS:
        return OccurenceConstraintViolation(text)
    if rule in _FORMATION_VALIDATORS:
        return FormationViolation(text)
    return PropertyConstraintViolation(text)


def _first_error(validator: Draft4Validator, payload: dict[str, Any]) -> SchemaError | None:
    errors = sorted(
        validator.iter_errors(payload), key=lambda e: (len(e.absolute_path), str(e.validator))
    )
    return errors[0] if errors else None


def validate(message_type: int, action: str, payload: Any) -> None:
    """Check a CALL or CALLRESULT payload against the 1.6 schema, raising the 1.6 error.

    ``action`` must be a known action; the caller decides NotImplemented/NotSupported.
    """
    if not isinstance(payload, dict):
        raise FormationViolation(f"{action}: payload must be a JSON object")
    if value_bounds.too_deep(payload):
        raise FormationViolation(f"{action}: payload nested deeper than "
                                 f"{value_bounds.MAX_DEPTH} levels")
    if _has_non_finite(payload):
        raise FormationViolation(f"{action}: NaN or Infinity is not JSON")
    _check_schema(message_type, action, payload)
    try:
        value_bounds.check(message_type, action, payload)
    except value_bounds.OutOfRange as exc:
        raise TypeConstraintViolation(f"{action}: {exc}") from None


def _check_schema(message_type: int, action: str, payload: dict[str, Any]) -> None:
    if (message_type, action) not in _DECIMAL_SCHEMAS:
        try:
            _fast_validator(message_type, action)(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise _error_for_rule(exc.rule or "", exc.name.removeprefix("data").lstrip("."),
                                  exc.message, action) from None
        return
    # multipleOf 0.1 needs exact decimals: the jsonschema path parses them as Decimal.
    candidate = json.loads(dumps(payload), parse_float=decimal.Decimal)
    error = _first_error(_validator(message_type, action), candidate)
    if error is not None:
        raise _error_for(error, action)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def check_charger_call(action: str, payload: Any) -> None:
    """Validate a CALL a charger sent: unknown action, direction, then schema."""
    if action not in KNOWN_ACTIONS:
        raise NotImplementedError_(f"unknown action {action!r}")
    if action not in CHARGER_ACTIONS:
        raise NotSupported(f"{action} is not supported by this central system")
    validate(CALL, action, payload)


def check_csms_call(action: str, payload: Any) -> None:
    """Validate a CALL GridLink is about to send to a charger."""
    if action not in KNOWN_ACTIONS:
        raise NotImplementedError_(f"unknown action {action!r}")
    if action not in CSMS_ACTIONS:
        raise NotSupported(f"{action} is not a central-system-to-charge-point action in 1.6")
    validate(CALL, action, payload)


# --- typed requests and responses (the ocpp library's dataclasses) ------------------------


def request_model(action: str, payload: dict[str, Any]) -> Any:
    """The ``ocpp.v16.call`` dataclass for a validated CALL payload (snake_case fields).

    A field the payload leaves out is None: the schema already allowed it to be absent, and
    the library's dataclasses require some optional fields (``requestId`` of
    LogStatusNotification and SignedFirmwareStatusNotification)."""
    cls, required = _request_class(action)
    fields = _snake(payload)
    for name in required:
        if name not in fields:
            fields[name] = None
    return cls(**fields)


@functools.cache
def _request_class(action: str) -> tuple[type, tuple[str, ...]]:
    """The dataclass of an action's CALL and its fields that have no default."""
    cls = getattr(call, action)
    required = tuple(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    return cls, required


@functools.lru_cache(maxsize=4096)
def _snake_key(key: str) -> str:
    """The library's snake_case of one camelCase key (its regular expressions, once per key)."""
    return next(iter(camel_to_snake_case({key: None})))


@functools.lru_cache(maxsize=4096)
def _camel_key(key: str) -> str:
    """The library's camelCase of one snake_case key."""
    return next(iter(snake_to_camel_case({key: None})))


def _snake(data: Any) -> Any:
    """``camel_to_snake_case`` with each distinct key converted once per process."""
    if isinstance(data, dict):
        return {_snake_key(k): _snake(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_snake(v) for v in data]
    return data


class _Unusual(Exception):
    """A value the fast path of :func:`response_payload` does not know: take the slow one."""


def _plain(value: Any) -> Any:
    """What ``json.loads(dumps(snake_to_camel_case(remove_nones(value))))`` gives for the
    usual values of a response (dicts, lists, strings, numbers, enums, datetimes, decimals),
    in one pass; :class:`_Unusual` for anything else."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if kind is dict:
        return {_camel_key(k) if type(k) is str else _unusual(): _plain(v)
                for k, v in value.items() if v is not None}
    if kind is list:
        return [_plain(v) for v in value if v is not None]
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, decimal.Decimal | datetime):
        return json.loads(dumps(value))
    return _unusual()


def _unusual() -> Any:
    raise _Unusual


def response_payload(response: Any) -> dict[str, Any]:
    """A ``ocpp.v16.call_result`` dataclass (or a plain dict) as a camelCase JSON object."""
    if dataclasses.is_dataclass(response) and not isinstance(response, type):
        response = {f.name: getattr(response, f.name) for f in dataclasses.fields(response)}
        if any(dataclasses.is_dataclass(v) for v in response.values()):
            return _response_payload_slow(response)
    try:
        plain: dict[str, Any] = _plain(response)
    except _Unusual:
        return _response_payload_slow(response)
    return plain


def _response_payload_slow(response: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(response) and not isinstance(response, type):
        response = dataclasses.asdict(response)
    cleaned = remove_nones(response)
    camel = snake_to_camel_case(cleaned)
    return json.loads(dumps(camel))  # type: ignore[no-any-return]


__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "CHARGER_ACTIONS",
    "CSMS_ACTIONS",
    "KNOWN_ACTIONS",
    "call",
    "call_result",
    "check_charger_call",
    "check_csms_call",
    "dumps",
    "iso",
    "loads_strict",
    "parse_time",
    "request_model",
    "response_payload",
    "utcnow",
    "validate",
]
