"""Which failures of a handler are worth retrying, and what the charger is told of the others.

A failure is **transient** when the same work can succeed later: MongoDB or RabbitMQ away,
a timeout, a primary stepping down, a write concern not met, the client closed because the
service is stopping. The message is then never answered: it is retried (MongoDB outages by
:meth:`services.runtime.ServiceRuntime.with_store`) or requeued, and the charger keeps it.

Every other failure is **deterministic**: a value pymongo cannot encode (an integer beyond
64 bits raises ``OverflowError``), a document MongoDB refuses (a non-transient error code),
or a bug's exception in a handler. Retrying would fail again and again until the broker
dead-letters the message, so the call is answered with a CALLERROR ``InternalError``
(:func:`charger_description`, no internals), acknowledged and counted
(:mod:`services.router`). A batch of coalesced operations that fails deterministically is
retried one request at a time (:mod:`services.coalesce`), so only the bad one fails.

When in doubt a failure is transient: a message requeued too often is dead-lettered, while
one answered wrongly is lost to the charger.
"""

from __future__ import annotations

from bson.errors import BSONError
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    CursorNotFound,
    DocumentTooLarge,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

from services.errors import BusUnavailable, ShuttingDown, StoreUnavailable

#: Server error codes after which the same operation can succeed (pymongo's retryable codes,
#: and the timeouts, lock and write conflicts, and throttling of MongoDB-wire servers).
TRANSIENT_CODES = frozenset({
    6,      # HostUnreachable
    7,      # HostNotFound
    24,     # LockTimeout
    46,     # LockBusy
    50,     # MaxTimeMSExpired
    64,     # WriteConcernFailed
    89,     # NetworkTimeout
    91,     # ShutdownInProgress
    112,    # WriteConflict
    133,    # FailedToSatisfyReadPreference
    134,    # ReadConcernMajorityNotAvailableYet
    189,    # PrimarySteppedDown
    202,    # NetworkInterfaceExceededTimeLimit
    251,    # NoSuchTransaction
    262,    # ExceededTimeLimit
    9001,   # SocketException
    10058,  # LegacyNotPrimary
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
    16500,  # RequestRateTooLarge (throttled)
})
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    StoreUnavailable, BusUnavailable, ShuttingDown,
    ConnectionFailure,   # AutoReconnect, NotPrimaryError, NetworkTimeout, server selection
    WriteConcernError,   # WTimeoutError
    CursorNotFound,      # the cursor timed out on the server: a new query succeeds
    InvalidOperation,    # the client was closed (the service is stopping)
    TimeoutError, ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the work that raised ``exc`` may succeed if tried again later."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        if details.get("writeConcernErrors"):
            return True
        return any(error.get("code") in TRANSIENT_CODES
                   for error in details.get("writeErrors", []))
    if isinstance(exc, OperationFailure):
        return exc.code in TRANSIENT_CODES or any(
            exc.has_error_label(label) for label in TRANSIENT_LABELS)
    if isinstance(exc, PyMongoError):
        return exc.timeout or any(exc.has_error_label(label) for label in TRANSIENT_LABELS)
    return False


def reason(exc: BaseException) -> str:
    """A short, bounded label for a metric: the exception's class, and the server's error
    code when there is one (``BulkWriteError:121``, ``OverflowError``)."""
    name = type(exc).__name__
    if isinstance(exc, BulkWriteError):
        codes = sorted({e.get("code") for e in (exc.details or {}).get("writeErrors", [])
                        if isinstance(e.get("code"), int)})
        return f"{name}:{codes[0]}" if codes else name
    if isinstance(exc, OperationFailure) and exc.code is not None:
        return f"{name}:{exc.code}"
    return name


def charger_description(exc: BaseException) -> str:
    """What the CALLERROR says (no internals: no message text, paths or documents)."""
    if isinstance(exc, OverflowError):
        return "a number in the call is too large to store"
    if isinstance(exc, DocumentTooLarge):
        return "the call is too large to store"
    if isinstance(exc, BSONError):  # InvalidDocument, InvalidStringData, ...
        return "a value in the call cannot be stored"
    if isinstance(exc, OperationFailure):
        return "the database refused what the call holds"
    return "the call could not be processed"
