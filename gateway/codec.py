"""OCPP-J frames in, typed events or CALLERRORs out. No I/O.

``decode(frame)`` returns one of:

- :class:`IncomingCall`   a schema-valid CALL from the charger
- :class:`IncomingResult` a CALLRESULT (validated later against the call it answers)
- :class:`IncomingError`  a CALLERROR
- :class:`Rejected`       a frame to answer with a CALLERROR (``error`` knows its 1.6 code)
- :class:`Unacceptable`   a frame to close the connection for (a binary frame: 1003)
- ``None``                a frame to ignore (unknown MessageTypeId, OCPP-J §4.1.3)

A frame that cannot be parsed has no id to answer with for sure: the CALLERROR carries the
id when the frame's head (``[2, "<id>",``) or Python's lenient parser can read one, else
``"-1"`` (OCPP-J 1.6 and its errata are silent; OCPP-J 2.0.1 §4.2.3 answers ``"-1"``).
JSON nested deeper than :data:`services.value_bounds.MAX_DEPTH` is a FormationViolation
(no 1.6 payload is deeper than 6 levels; deeper ones would exhaust the parser's recursion
and BSON's nesting).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from services import ocpp16, value_bounds
from services.errors import (
    OCPP16_ERROR_CODES,
    FormationViolation,
    OcppError,
    ProtocolError,
)

MAX_UNIQUE_ID = 36
UNKNOWN_ID = "-1"  # the id we answer with when the frame's own id cannot be read
CLOSE_UNSUPPORTED_DATA = 1003  # RFC 6455 §7.4.1: a binary frame to a text-only endpoint
#: The head of a CALL, read when the frame as a whole cannot be parsed.
_CALL_HEAD = re.compile(r'\s*\[\s*2\s*,\s*"([^"\\]{1,' + str(MAX_UNIQUE_ID) + r'})"\s*,')


@dataclass(frozen=True, slots=True)
class IncomingCall:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IncomingResult:
    unique_id: str
    payload: Any


@dataclass(frozen=True, slots=True)
class IncomingError:
    unique_id: str
    code: str
    description: str
    details: Any


@dataclass(frozen=True, slots=True)
class Rejected:
    unique_id: str
    error: OcppError
    too_deep: bool = False  # nested deeper than the codec takes (counted apart)


@dataclass(frozen=True, slots=True)
class Unacceptable:
    """A frame the connection is closed for, with this WebSocket close code."""

    code: int
    reason: str


Event = IncomingCall | IncomingResult | IncomingError | Rejected | Unacceptable | None


def decode(frame: str | bytes) -> Event:
    """Parse and check one frame from a charger."""
    if isinstance(frame, bytes):  # OCPP-J messages are text frames of UTF-8 JSON
        return Unacceptable(CLOSE_UNSUPPORTED_DATA, "OCPP-J frames are text, not binary")
    try:
        message = ocpp16.loads_strict(frame)
    except RecursionError:
        return _too_deep(_head_id(frame))
    except ValueError as exc:
        return Rejected(_lenient_id(frame), FormationViolation(f"frame is not valid JSON: {exc}"))
    if value_bounds.too_deep(message):
        parsed_id = message[1] if isinstance(message, list) and len(message) > 1 else None
        return _too_deep(parsed_id if _is_id(parsed_id) else UNKNOWN_ID)
    if not isinstance(message, list) or not message:
        return Rejected(UNKNOWN_ID, FormationViolation("frame must be a non-empty JSON array"))
    message_type = message[0]
    unique_id = message[1] if len(message) > 1 else None
    answer_id = unique_id if _is_id(unique_id) else UNKNOWN_ID
    if type(message_type) is not int:
        return Rejected(answer_id, FormationViolation("MessageTypeId must be an integer"))
    if message_type not in (ocpp16.CALL, ocpp16.CALLRESULT, ocpp16.CALLERROR):
        return None
    if not _is_id(unique_id):
        return Rejected(UNKNOWN_ID, ProtocolError(
            f"UniqueId must be a string of 1 to {MAX_UNIQUE_ID} characters"))
    assert isinstance(unique_id, str)
    try:
        if message_type == ocpp16.CALL:
            return _call(unique_id, message)
        if message_type == ocpp16.CALLRESULT:
            _expect_length(message, 3, 3)
            return IncomingResult(unique_id, message[2])
        _expect_length(message, 4, 5)
        code, description = message[2], message[3]
        if not isinstance(code, str) or not isinstance(description, str):
            raise FormationViolation("CALLERROR code and description must be strings")
        return IncomingError(unique_id, code, description, message[4] if len(message) > 4 else {})
    except OcppError as exc:
        return Rejected(unique_id, exc)


def _too_deep(unique_id: str) -> Rejected:
    return Rejected(unique_id, FormationViolation(
        f"frame nested deeper than {value_bounds.MAX_DEPTH} levels"), too_deep=True)


def _call(unique_id: str, message: list[Any]) -> IncomingCall:
    _expect_length(message, 4, 4)
    action, payload = message[2], message[3]
    if not isinstance(action, str):
        raise FormationViolation("Action must be a string")
    ocpp16.check_charger_call(action, payload)
    return IncomingCall(unique_id, action, payload)


def _expect_length(message: list[Any], low: int, high: int) -> None:
    if len(message) < low:
        raise ProtocolError(f"frame has {len(message)} elements, expected {low}")
    if len(message) > high:
        raise FormationViolation(f"frame has {len(message)} elements, expected {high}")


def _lenient_id(frame: str) -> str:
    """The frame's id when Python's lenient parser can read it (NaN, duplicate keys), else
    when its head is a CALL's."""
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return _head_id(frame)
    if isinstance(message, list) and len(message) > 1 and _is_id(message[1]):
        return str(message[1])
    return UNKNOWN_ID


def _head_id(frame: str) -> str:
    """The id of a frame that starts as a CALL does (``[2, "<id>",``), else ``"-1"``."""
    head = _CALL_HEAD.match(frame, 0, 64 + MAX_UNIQUE_ID)
    return head.group(1) if head else UNKNOWN_ID


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_UNIQUE_ID


def encode_call(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    return ocpp16.dumps([ocpp16.CALL, unique_id, action, payload])


def encode_result(unique_id: str, payload: dict[str, Any]) -> str:
    return ocpp16.dumps([ocpp16.CALLRESULT, unique_id, payload])


def encode_error(unique_id: str, code: str, description: str,
                 details: dict[str, Any] | None = None) -> str:
    code = code if code in OCPP16_ERROR_CODES else "GenericError"
    return ocpp16.dumps([ocpp16.CALLERROR, unique_id, code, description[:512], details or {}])

