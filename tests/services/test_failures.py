"""Which failures are retried (transient) and which are answered (deterministic)."""

from __future__ import annotations

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteError,
    WTimeoutError,
)

from services.errors import BusUnavailable, ShuttingDown, StoreUnavailable
from services.failures import charger_description, is_transient, reason


def bulk(*codes: int, concern: bool = False) -> BulkWriteError:
    return BulkWriteError({
        "writeErrors": [{"index": i, "code": c, "errmsg": "x"} for i, c in enumerate(codes)],
        "writeConcernErrors": [{"code": 64, "errmsg": "waiting"}] if concern else [],
        "nInserted": 0})


@pytest.mark.parametrize("exc", [
    StoreUnavailable("down"), BusUnavailable("down"), ShuttingDown("stopping"),
    AutoReconnect("lost"), NetworkTimeout("slow"), NotPrimaryError("stepped down"),
    ServerSelectionTimeoutError("no server"), WTimeoutError("w", 64),
    ExecutionTimeout("maxTimeMS", 50), OperationFailure("stepped down", 189),
    OperationFailure("write conflict", 112),
    OperationFailure("labelled", 1, {"errorLabels": ["RetryableWriteError"]}),
    InvalidOperation("Cannot use AsyncMongoClient after close"),
    TimeoutError(), ConnectionResetError(), bulk(11000, 91), bulk(11000, concern=True),
])
def test_transient_failures_are_retried_not_answered(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    OverflowError("MongoDB can only handle up to 8-byte ints"), InvalidDocument("bad key"),
    DocumentTooLarge("too big"), DuplicateKeyError("dup", 11000),
    WriteError("validation", 121), OperationFailure("bad value", 2), bulk(121), bulk(11000, 2),
    ValueError("bad"), KeyError("missing"), TypeError("None"), AssertionError(),
])
def test_deterministic_failures_are_answered(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_reasons_are_bounded_labels() -> None:
    assert reason(OverflowError("MongoDB can only handle up to 8-byte ints")) == "OverflowError"
    assert reason(bulk(121, 2)) == "BulkWriteError:2"
    assert reason(OperationFailure("x", 121)) == "OperationFailure:121"
    assert reason(ValueError("anything at all")) == "ValueError"


def test_descriptions_say_what_without_internals() -> None:
    text = charger_description(OverflowError("MongoDB can only handle up to 8-byte ints"))
    assert text == "a number in the call is too large to store"
    secret = OperationFailure("failed for {'id_tag': 'SECRET'}", 121)
    assert "SECRET" not in charger_description(secret)
    assert "SECRET" not in charger_description(ValueError("SECRET"))
    assert all(len(charger_description(e)) <= 255 for e in (
        InvalidDocument("k"), DocumentTooLarge("d"), KeyError("k"), secret))
