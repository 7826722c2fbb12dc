"""Reading an operator's import file: CSV with a header line, or JSON lines (one object per
line), told apart by the file's name (``.csv``; ``.jsonl``, ``.ndjson``, ``.json``) or else by
its first character (``{``). Blank lines are skipped; a line that cannot be read is reported
with its number, never the end of the import (:mod:`gridlink.registry_import`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class LineError(ValueError):
    """Why one line cannot be imported."""


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """``(line number, record or why it cannot be read)`` for every non-blank line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LineError(f"{path}: cannot read it: {exc}") from None
    if _is_json_lines(Path(path), text):
        yield from _json_lines(text)
    else:
        yield from _csv_rows(text)


def _is_json_lines(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return False
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    return text.lstrip()[:1] == "{"


def _json_lines(text: str) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_no_constant)
        except ValueError as exc:
            yield number, LineError(f"not JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield number, LineError("not a JSON object")
            continue
        yield number, record


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    reader = csv.reader(text.splitlines(keepends=True))
    header: list[str] | None = None
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            continue
        if len(row) != len(header):
            yield number, LineError(f"{len(row)} fields where the header has {len(header)}")
            continue
        yield number, {name: cell for name, cell in zip(header, row, strict=True)
                       if cell.strip() != ""}


def fields_of(record: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The record under its canonical field names; unknown or repeated fields are errors."""
    unknown = sorted(set(record) - set(names))
    if unknown:
        raise LineError(f"unknown field {unknown[0]!r} (known: "
                        f"{', '.join(sorted(set(names.values())))})")
    canonical: dict[str, Any] = {}
    for name, value in record.items():
        if names[name] in canonical:
            raise LineError(f"field {names[name]!r} given twice")
        if value is not None:
            canonical[names[name]] = value
    return canonical


def text_field(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LineError(f"{name} must be text")
    return value.strip()


def integer_field(fields: dict[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise LineError(f"{name} must be a whole number")
    try:
        return int(value)
    except ValueError:
        raise LineError(f"{name} must be a whole number, not {value!r}") from None
