"""GridLink's one error hierarchy.

::

    GridLinkError
    ├── ConfigurationError          bad setting or command line (one line, exit 2)
    ├── StoreUnavailable            MongoDB unreachable: retry later, never answer the charger
    ├── BusUnavailable              RabbitMQ unreachable: retry later, never answer the charger
    ├── Unroutable                  a mandatory publish reached no queue (station offline)
    ├── Reject                      a consumed message is malformed: dead-letter, never redeliver
    ├── ShuttingDown                stopping while MongoDB is away: the message goes back
    ├── Refused                     refused before anything is recorded (code, description)
    │   ├── CommandRefused          a command request: answered ``invalid``
    │   └── SyncRefused             a local list sync cannot start (commands/local_list/rules.py)
    ├── TransferRefused             an upload or download refused with an HTTP status
    │                               (commands/files/http_server.py)
    └── OcppError                   answered to the peer as a CALLERROR with ``code``
        ├── NotImplementedError_    unknown action                      NotImplemented
        ├── NotSupported            known action this side does not do  NotSupported
        ├── InternalError           a bug or an unexpected failure      InternalError
        ├── ProtocolError           incomplete frame                    ProtocolError
        ├── SecurityError           not allowed before an accepted boot SecurityError
        ├── FormationViolation      not JSON / not the PDU's structure  FormationViolation
        ├── PropertyConstraintViolation  a field has an invalid value   PropertyConstraintViolation
        ├── OccurenceConstraintViolation a required field is missing    OccurenceConstraintViolation
        ├── TypeConstraintViolation a field has the wrong type          TypeConstraintViolation
        └── GenericError            anything else                       GenericError

Two leaves belong to a component and are defined there (named above with their module); all
others are here. The codes are OCPP-J 1.6 §4.2.3 (with the spec's spelling, kept by the
errata); the ``ocpp`` library's 2.0 spellings (``FormatViolation``, ``RpcFrameworkError``) are
never sent. The simulator (``simulator/``) is an independent program with its own errors.
"""

from __future__ import annotations

from typing import Any, ClassVar

OCPP16_ERROR_CODES = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
)


class GridLinkError(Exception):
    """Base of every error GridLink raises on purpose."""


class ConfigurationError(GridLinkError):
    """A setting or a command-line argument is wrong."""


class StoreUnavailable(GridLinkError):
    """MongoDB cannot be reached right now; the work must be retried, not answered."""


class BusUnavailable(GridLinkError):
    """RabbitMQ cannot be reached right now."""


class Unroutable(GridLinkError):
    """A mandatory message reached no queue."""


class Reject(GridLinkError):
    """A consumed message is malformed: dead-letter it, never redeliver."""


class ShuttingDown(GridLinkError):
    """The service is stopping while a message waits for the database: requeue it."""


#: What a rule found wrong with a request: (error code, description).
Refusal = tuple[str, str]


class Refused(GridLinkError):
    """A request is refused before anything is recorded; ``code`` names the rule."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class CommandRefused(Refused):
    """A command request is refused before it is recorded (answered ``invalid``)."""


class OcppError(GridLinkError):
    """An error that is answered to the peer as a CALLERROR."""

    code: ClassVar[str] = "GenericError"

    def __init__(self, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description or self.code
        self.details = details or {}


class NotImplementedError_(OcppError):
    code = "NotImplemented"


class NotSupported(OcppError):
    code = "NotSupported"


class InternalError(OcppError):
    code = "InternalError"


class ProtocolError(OcppError):
    code = "ProtocolError"


class SecurityError(OcppError):
    code = "SecurityError"


class FormationViolation(OcppError):
    code = "FormationViolation"


class PropertyConstraintViolation(OcppError):
    code = "PropertyConstraintViolation"


class OccurenceConstraintViolation(OcppError):
    code = "OccurenceConstraintViolation"


class TypeConstraintViolation(OcppError):
    code = "TypeConstraintViolation"


class GenericError(OcppError):
    code = "GenericError"


_BY_CODE: dict[str, type[OcppError]] = {
    cls.code: cls
    for cls in (
        NotImplementedError_,
        NotSupported,
        InternalError,
        ProtocolError,
        SecurityError,
        FormationViolation,
        PropertyConstraintViolation,
        OccurenceConstraintViolation,
        TypeConstraintViolation,
        GenericError,
    )
}

# Spellings other implementations (and the ``ocpp`` library) use, mapped to 1.6.
_ALIASES = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "RpcFrameworkError": "ProtocolError",
    "MessageTypeNotSupported": "NotSupported",
}


def error_for_code(code: str, description: str = "", details: dict[str, Any] | None = None
                   ) -> OcppError:
    """An OcppError for a code received from a peer (unknown codes become GenericError)."""
    cls = _BY_CODE.get(_ALIASES.get(code, code), GenericError)
    return cls(description, details)
