"""Bulk registration: stations and id tags from a file (``gridlink stations|tags import``).

A file is CSV with a header line, or JSON lines (one object per line); which, is told by its
name (``.csv``; ``.jsonl``, ``.ndjson``, ``.json``) or else by its first character (``{``).
Blank lines are skipped. Field names are snake_case or the camelCase of ``list --json``:

- stations: ``id`` (or ``chargePointId``), ``security_profile``, ``password``,
  ``certificate_cn``, ``registration`` — each line does what ``gridlink stations add`` does
  with the same options (a profile 1 or 2 station without a password gets a generated key,
  shown once).
- tags: ``id_tag`` (or ``idTag``), ``status``, ``expiry``, ``parent`` (or ``parentIdTag``),
  ``max_concurrent`` — as ``gridlink tags add``.

Every line is checked before anything is written; the good ones are then upserted in bulk
(idempotent: importing the same file again creates nothing), and the report names each
rejected line with its number and reason. ``dry_run`` checks and counts, and writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from gridlink.import_files import LineError, fields_of, integer_field, read_records, text_field
from services import id_tags, station_ids, stations
from services.clock import utcnow
from services.ocpp16 import parse_time

BATCH = 1000  # operations per bulk write
ID_TAG_MAX = 20  # IdToken is CiString20Type (OCPP 1.6 §7.26)
REGISTRATIONS = ("Accepted", "Pending", "Rejected")

STATION_FIELDS = {"id": "id", "chargePointId": "id", "security_profile": "security_profile",
                  "securityProfile": "security_profile", "password": "password",
                  "certificate_cn": "certificate_cn", "certificateCn": "certificate_cn",
                  "registration": "registration"}
TAG_FIELDS = {"id_tag": "id_tag", "idTag": "id_tag", "status": "status", "expiry": "expiry",
              "parent": "parent", "parentIdTag": "parent", "max_concurrent": "max_concurrent",
              "maxConcurrent": "max_concurrent"}


@dataclass
class Report:
    """What an import did (or, in a dry run, would do)."""

    created: list[tuple[int, str]] = field(default_factory=list)
    updated: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    generated_keys: list[tuple[int, str, str]] = field(default_factory=list)  # line, id, key
    dry_run: bool = False

    def lines(self) -> Iterator[str]:
        """The report as the CLI prints it: rejected lines, generated keys, then the totals."""
        for line, reason in self.rejected:
            yield f"line {line}: rejected: {reason}"
        for line, station, key in self.generated_keys:
            yield (f"line {line}: {station}  AuthorizationKey {key}  (shown once; stored only "
                   "as a hash)")
        verb = "would create" if self.dry_run else "created"
        totals = (f"{verb} {len(self.created)}, {'would update' if self.dry_run else 'updated'}"
                  f" {len(self.updated)}, rejected {len(self.rejected)}")
        yield totals + (" (dry run: nothing written)" if self.dry_run else "")


# --- stations -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StationLine:
    line: int
    station: str
    registration: str
    security_profile: int
    password: str | None
    certificate_cn: str | None


def station_line(number: int, record: dict[str, Any], default_registration: str,
                 max_id_length: int | None = None) -> StationLine:
    """One stations line, checked as ``gridlink stations add`` checks its options (the id
    as the gateway checks it, and in NFC as it is stored)."""
    fields = fields_of(record, STATION_FIELDS)
    station = fields.get("id")
    if not station:
        raise LineError("id is missing")
    if not isinstance(station, str):
        raise LineError("id must be text")
    try:
        station = station_ids.check(station, max_id_length)
    except station_ids.InvalidStationId as exc:
        raise LineError(str(exc)) from None
    registration = text_field(fields, "registration") or default_registration
    if registration not in REGISTRATIONS:
        raise LineError(f"registration must be one of {', '.join(REGISTRATIONS)}")
    password = fields.get("password")
    if password is not None and not isinstance(password, str):
        raise LineError("password must be text")
    if password is not None and (problem := stations.key_problem(password)):
        raise LineError(f"password: {problem}")
    profile = integer_field(fields, "security_profile")
    if profile is None:
        profile = 1 if password is not None else 0
    if profile not in stations.PROFILES:
        raise LineError("security_profile must be 0, 1, 2 or 3")
    if password is not None and profile in (0, 3):
        raise LineError(f"password: a security profile {profile} station does not use one")
    certificate_cn = text_field(fields, "certificate_cn") or None
    return StationLine(number, station, registration, profile, password, certificate_cn)


async def import_stations(db: AsyncDatabase[dict[str, Any]], path: str | Path, *,
                          default_registration: str, max_id_length: int | None = None,
                          dry_run: bool = False) -> Report:
    """Check every line of ``path``, then upsert the good ones (see the module docstring)."""
    report = Report(dry_run=dry_run)
    lines: list[StationLine] = []
    for number, record in read_records(path):
        try:
            if isinstance(record, LineError):
                raise record
            lines.append(station_line(number, record, default_registration, max_id_length))
        except LineError as exc:
            report.rejected.append((number, str(exc)))
    lines = _first_of_each(lines, lambda entry: entry.station, report)
    lines = _one_certificate_identity_each(lines, report)
    existing = await _existing(db, stations.COLLECTION, [entry.station for entry in lines],
                               {"password_hash": 1})
    kept: list[StationLine] = []
    for entry in lines:
        try:
            await stations.check_certificate_identity(db, entry.station, entry.certificate_cn)
        except stations.IdentityTaken as exc:
            report.rejected.append((entry.line, str(exc)))
            continue
        kept.append(entry)
    passwords = {entry.line: entry.password for entry in kept}
    for entry in kept:
        if (entry.password is None and entry.security_profile in (1, 2)
                and not existing.get(entry.station, {}).get("password_hash")):
            key = "(generated on import)" if dry_run else stations.generate_key()
            passwords[entry.line] = None if dry_run else key
            report.generated_keys.append((entry.line, entry.station, key))
    for entry in kept:
        (report.updated if entry.station in existing else report.created).append(
            (entry.line, entry.station))
    report.rejected.sort()
    if dry_run or not kept:
        return report
    hashes = _hash_all(passwords)
    now = utcnow()
    operations = [UpdateOne({"_id": entry.station}, stations.station_update(
        registration=entry.registration, password_hash=hashes.get(entry.line), now=now,
        security_profile=entry.security_profile, certificate_cn=entry.certificate_cn),
        upsert=True) for entry in kept]
    await _bulk(db, stations.COLLECTION, operations)
    return report


def _one_certificate_identity_each(lines: list[StationLine], report: Report
                                   ) -> list[StationLine]:
    """Refuse a line whose certificate identity another line of the file already claims."""
    claimed: dict[str, int] = {}
    kept = []
    for entry in lines:
        identities = {entry.certificate_cn or entry.station}
        clash = next((claimed[i] for i in identities if i in claimed), None)
        if clash is not None:
            report.rejected.append((entry.line, f"certificate identity "
                                    f"{entry.certificate_cn or entry.station!r} is also line "
                                    f"{clash}'s: one certificate per charger (A00.FR.427)"))
            continue
        for identity in identities:
            claimed[identity] = entry.line
        kept.append(entry)
    return kept


def _hash_all(passwords: dict[int, str | None]) -> dict[int, str]:
    """Argon2id hashes of the passwords by line, on every core (each takes tens of ms)."""
    todo = {line: password for line, password in passwords.items() if password is not None}
    if not todo:
        return {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(todo, pool.map(stations.hash_password, todo.values()), strict=True))


# --- id tags --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TagLine:
    line: int
    tag: str
    status: str
    expiry: datetime | None
    parent: str | None
    max_concurrent: int | None


def tag_line(number: int, record: dict[str, Any]) -> TagLine:
    """One tags line, checked as ``gridlink tags add`` checks its options."""
    fields = fields_of(record, TAG_FIELDS)
    tag = text_field(fields, "id_tag")
    if not tag:
        raise LineError("id_tag is missing")
    if problem := id_tag_problem(tag):
        raise LineError(f"id_tag {tag!r}: {problem}")
    status = text_field(fields, "status") or "Accepted"
    if status not in id_tags.STATUSES:
        raise LineError(f"status must be one of {', '.join(id_tags.STATUSES)}")
    expiry = None
    if (text := text_field(fields, "expiry")) is not None:
        try:
            expiry = parse_time(text)
        except ValueError:
            raise LineError(f"expiry is not an ISO 8601 date-time: {text!r}") from None
    parent = text_field(fields, "parent") or None
    if parent is not None and (problem := id_tag_problem(parent)):
        raise LineError(f"parent {parent!r}: {problem}")
    limit = integer_field(fields, "max_concurrent")
    if limit is not None and not 1 <= limit <= id_tags.MAX_CONCURRENT_LIMIT:
        raise LineError(f"max_concurrent must be 1..{id_tags.MAX_CONCURRENT_LIMIT}")
    return TagLine(number, tag, status, expiry, parent, limit)


def id_tag_problem(tag: str) -> str | None:
    """Why ``tag`` cannot be an idTag (CiString20Type), or None."""
    if len(tag) > ID_TAG_MAX:
        return f"an idTag is at most {ID_TAG_MAX} characters"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in tag):
        return "an idTag holds no control characters"
    return None


async def import_tags(db: AsyncDatabase[dict[str, Any]], path: str | Path, *,
                      dry_run: bool = False) -> Report:
    """Check every line of ``path``, then upsert the good ones (see the module docstring)."""
    report = Report(dry_run=dry_run)
    lines: list[TagLine] = []
    for number, record in read_records(path):
        try:
            if isinstance(record, LineError):
                raise record
            lines.append(tag_line(number, record))
        except LineError as exc:
            report.rejected.append((number, str(exc)))
    lines = _first_of_each(lines, lambda entry: entry.tag, report)
    report.rejected.sort()
    await upsert_tags(db, lines, report, dry_run=dry_run)
    return report


async def upsert_tags(db: AsyncDatabase[dict[str, Any]], lines: list[TagLine], report: Report,
                      *, dry_run: bool = False) -> None:
    """Upsert checked tag lines in bulk, recording each as created or updated."""
    existing = await _existing(db, id_tags.COLLECTION, [entry.tag for entry in lines], {"_id": 1})
    for entry in lines:
        (report.updated if entry.tag in existing else report.created).append(
            (entry.line, entry.tag))
    if dry_run or not lines:
        return
    operations = [UpdateOne({"_id": entry.tag}, id_tags.tag_update(
        status=entry.status, expiry=entry.expiry, parent=entry.parent,
        max_concurrent=entry.max_concurrent), upsert=True) for entry in lines]
    await _bulk(db, id_tags.COLLECTION, operations)


# --- shared ---------------------------------------------------------------------------------

class _Line(Protocol):
    @property
    def line(self) -> int: ...


LineT = TypeVar("LineT", bound=_Line)


def _first_of_each(lines: list[LineT], key: Callable[[LineT], str], report: Report
                   ) -> list[LineT]:
    """Refuse a line naming the same id as an earlier line of the file."""
    seen: dict[str, int] = {}
    kept = []
    for entry in lines:
        name = key(entry)
        if name in seen:
            report.rejected.append((entry.line, f"{name!r} is also on line {seen[name]}"))
            continue
        seen[name] = entry.line
        kept.append(entry)
    return kept


async def _existing(db: AsyncDatabase[dict[str, Any]], collection: str, ids: list[str],
                    projection: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The documents of ``collection`` that already exist among ``ids``, by id."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), BATCH):
        async for doc in db[collection].find({"_id": {"$in": ids[start:start + BATCH]}},
                                             projection=projection):
            found[doc["_id"]] = doc
    return found


async def _bulk(db: AsyncDatabase[dict[str, Any]], collection: str,
                operations: list[UpdateOne]) -> None:
    for start in range(0, len(operations), BATCH):
        await db[collection].bulk_write(operations[start:start + BATCH], ordered=False)
