"""What every ``gridlink`` subcommand shares: the argument parser class, tables, a database
handle, date-time options, and sending a command with one-line errors.

Errors are one line on stderr, never a traceback: raise :class:`ConfigurationError` for bad
arguments (exit 2) or :class:`GridLinkError` for a failure (exit 1).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.errors import ConfigurationError, GridLinkError

if TYPE_CHECKING:
    from services.envelope import CommandResult
    from services.settings import Settings

# The database, the broker and the codec are imported where a subcommand uses them, so that
# this module (which every subcommand's parser uses) stays cheap to import.


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one :class:`ConfigurationError` line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigurationError(f"{self.prog}: {message}")


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    """Rows as an aligned table, or as JSON."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("(none)")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_cell(row[c]).ljust(widths[c]) for c in columns))


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " > ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


async def with_db(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``work(db)`` against the configured database (one line if it is unreachable)."""
    from gridlink.queries import INDEXES
    from services.settings import effective_mongo_url
    from services.store import Store, write_concern

    store = Store(effective_mongo_url(settings), settings.mongo_db, component="cli",
                  concern=write_concern(settings))
    try:
        if not await store.ping():
            raise GridLinkError(
                "cannot reach MongoDB (set GRIDLINK_MONGO_URL, or start `make run` first)")
        await store.ensure_indexes(INDEXES)
        return await work(store.db)
    finally:
        await store.close()


def parse_time_option(option: str, text: str | None) -> datetime | None:
    """An ISO 8601 date-time option (None when not given)."""
    if text is None:
        return None
    from services import ocpp16

    try:
        return ocpp16.parse_time(text)
    except ValueError:
        raise ConfigurationError(f"{option}: not an ISO 8601 date-time: {text!r}") from None


def positive(option: str, value: float | None) -> None:
    """Refuse a zero or negative number given for ``option``."""
    if value is not None and value <= 0:
        raise ConfigurationError(f"{option} must be positive")


async def submit(settings: Settings, station: str, action: str, payload: dict[str, Any], *,
                 timeout_s: float, **options: Any) -> CommandResult | None:
    """Send a command (and wait for its result unless ``wait=False``: then None); no result
    in time, or a request that is not a command, is a one-line error."""
    from pydantic import ValidationError

    from gridlink.client import send_command

    try:
        return await send_command(settings, station, action, payload, timeout_s=timeout_s,
                                  **options)
    except TimeoutError:
        raise GridLinkError(f"timeout: no result within {timeout_s:g} s") from None
    except ValidationError as exc:
        raise ConfigurationError(f"invalid command: {exc.errors()[0]['msg']}") from None


async def send(settings: Settings, station: str, action: str, payload: dict[str, Any], *,
               timeout_s: float, **options: Any) -> CommandResult:
    """Send a command and wait for its result (see :func:`submit`)."""
    result = await submit(settings, station, action, payload, timeout_s=timeout_s, **options)
    assert result is not None
    return result


def answered(result: CommandResult) -> CommandResult:
    """The result if the charger answered (accepted or rejected), else its one-line error."""
    if result.status not in ("accepted", "rejected"):
        raise GridLinkError(result.failure_text())
    return result
