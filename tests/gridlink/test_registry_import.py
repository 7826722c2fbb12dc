"""Bulk registration (``gridlink stations|tags import``, ``tags add A B C``): every line
checked first, good ones upserted in bulk, each rejected one reported with its number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from gridlink import registry_import as bulk
from services import stations


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def test_tags_from_csv_created_then_updated_idempotently(
        db: AsyncDatabase[dict[str, Any]], tmp_path: Path) -> None:
    source = write(tmp_path / "tags.csv", "id_tag,status,expiry,parent,max_concurrent\n"
                   "T1,Accepted,,,\n"
                   "T2,Blocked,2027-01-01T00:00:00Z,T1,\n"
                   "\n"
                   "FLEET,,,,5\n")
    first = await bulk.import_tags(db, source)
    assert [line for line, _ in first.created] == [2, 3, 5] and first.rejected == []
    stored = {doc["_id"]: doc async for doc in db.id_tags.find({})}
    assert stored["T2"]["status"] == "Blocked" and stored["T2"]["parent"] == "T1"
    assert stored["T2"]["expiry"].year == 2027
    assert stored["FLEET"]["max_concurrent"] == 5 and stored["T1"]["max_concurrent"] == 1
    again = await bulk.import_tags(db, source)
    assert again.created == [] and [tag for _, tag in again.updated] == ["T1", "T2", "FLEET"]
    assert await db.id_tags.count_documents({}) == 3


async def test_bad_tag_lines_are_rejected_with_their_numbers_and_the_rest_written(
        db: AsyncDatabase[dict[str, Any]], tmp_path: Path) -> None:
    source = write(tmp_path / "tags.jsonl", "\n".join([
        '{"idTag": "GOOD1"}',
        '{"idTag": "WAY-TOO-LONG-FOR-AN-IDTAG"}',
        '{"idTag": "BADSTATUS", "status": "Maybe"}',
        "not json",
        '{"idTag": "BADEXPIRY", "expiry": "tomorrow"}',
        '{"idTag": "GOOD1", "status": "Blocked"}',
        '{"idTag": "LIMIT", "maxConcurrent": 0}',
        '{"idTag": "EXTRA", "colour": "red"}',
        '["an array"]',
        '{"idTag": "GOOD2", "parentIdTag": "GOOD1", "maxConcurrent": "2"}',
    ]))
    report = await bulk.import_tags(db, source)
    reasons = dict(report.rejected)
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "at most 20 characters" in reasons[2] and "status must be one of" in reasons[3]
    assert "not JSON" in reasons[4] and "ISO 8601" in reasons[5]
    assert "also on line 1" in reasons[6] and "max_concurrent must be" in reasons[7]
    assert "unknown field 'colour'" in reasons[8] and "not a JSON object" in reasons[9]
    stored = {doc["_id"]: doc async for doc in db.id_tags.find({})}
    assert set(stored) == {"GOOD1", "GOOD2"}
    assert stored["GOOD1"]["status"] == "Accepted"  # the duplicate line did not win
    assert stored["GOOD2"]["max_concurrent"] == 2 and stored["GOOD2"]["parent"] == "GOOD1"


async def test_a_dry_run_counts_and_writes_nothing(db: AsyncDatabase[dict[str, Any]],
                                                   tmp_path: Path) -> None:
    await db.id_tags.insert_one({"_id": "OLD", "status": "Accepted"})
    source = write(tmp_path / "tags.csv", "idTag,status\nOLD,Blocked\nNEW,Accepted\nX,No\n")
    report = await bulk.import_tags(db, source, dry_run=True)
    assert (report.created, report.updated) == ([(3, "NEW")], [(2, "OLD")])
    assert list(report.lines())[-1] == ("would create 1, would update 1, rejected 1 "
                                        "(dry run: nothing written)")
    assert [doc async for doc in db.id_tags.find({})] == [{"_id": "OLD", "status": "Accepted"}]


async def test_a_csv_line_with_the_wrong_number_of_fields_is_rejected(
        db: AsyncDatabase[dict[str, Any]], tmp_path: Path) -> None:
    source = write(tmp_path / "tags.csv", 'idTag,status\n"A,B",Accepted\nC\nD,Accepted,x\n')
    report = await bulk.import_tags(db, source)
    assert report.created == [(2, "A,B")]
    assert [line for line, _ in report.rejected] == [3, 4]


async def test_stations_as_stations_add_would_register_them(
        db: AsyncDatabase[dict[str, Any]], tmp_path: Path) -> None:
    key = "0123456789abcdef0123"
    source = write(tmp_path / "stations.csv",
                   "id,security_profile,password,certificate_cn,registration\n"
                   f"CP-1,1,{key},,\n"
                   "CP-2,2,,,Pending\n"
                   "CP-3,3,,serial-3,\n"
                   "CP-4,,,,\n"
                   f"CP-5,3,{key},,\n"
                   "CP-6,7,,,\n"
                   "CP-7,1,short,,\n"
                   "CP-8,3,,serial-3,\n"
                   "CP/9,1,,,\n"
                   "CP-10,1,,,Sometimes\n"
                   "Cafe\u0301,0,,,\n")
    report = await bulk.import_stations(db, source, default_registration="Accepted")
    assert [station for _, station in report.created] == ["CP-1", "CP-2", "CP-3", "CP-4",
                                                          "Caf\u00e9"]  # stored in NFC
    reasons = dict(report.rejected)
    assert sorted(reasons) == [6, 7, 8, 9, 10, 11]
    assert "does not use one" in reasons[6] and "0, 1, 2 or 3" in reasons[7]
    assert "16 to 40 characters" in reasons[8] and "also line 4's" in reasons[9]
    assert "(SOLIDUS) at position 3 is not allowed" in reasons[10]
    assert "registration must be one of" in reasons[11]
    stored = {doc["_id"]: doc async for doc in db.stations.find({})}
    assert stations.check_password(key, stored["CP-1"]["password_hash"])
    assert key not in json.dumps(stored, default=str)  # only the hash is stored
    (line, station, generated), = report.generated_keys
    assert (line, station) == (3, "CP-2") and stored["CP-2"]["registration"] == "Pending"
    assert stations.check_password(generated, stored["CP-2"]["password_hash"])
    assert (stored["CP-3"]["certificate_cn"], stored["CP-3"]["security_profile"]) == \
        ("serial-3", 3)
    assert stored["CP-4"]["security_profile"] == 0 and "password_hash" not in stored["CP-4"]
    again = await bulk.import_stations(db, write(tmp_path / "again.csv",
                                                 "id,security_profile\nCP-2,2\nserial-3,3\n"),
                                       default_registration="Accepted")
    assert again.generated_keys == []  # CP-2 keeps the key it has
    assert again.updated == [(2, "CP-2")]
    (line, reason), = again.rejected  # another station answers to that certificate identity
    assert line == 3 and "A00.FR.427" in reason
    assert (await db.stations.find_one({"_id": "CP-2"}))["password_hash"] == \
        stored["CP-2"]["password_hash"]


@pytest.fixture
def cli_env(mongo_url: str, db: AsyncDatabase[dict[str, Any]]) -> dict[str, str]:
    return {**os.environ, "GRIDLINK_MONGO_URL": mongo_url, "GRIDLINK_MONGO_DB": db.name}


def gridlink(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridlink", *args], capture_output=True,
                          text=True, timeout=60, env=env, check=False)


async def test_the_commands_report_and_exit_1_on_a_rejected_line(
        cli_env: dict[str, str], db: AsyncDatabase[dict[str, Any]], tmp_path: Path) -> None:
    source = write(tmp_path / "tags.csv", "idTag,status\nA,Accepted\nB,Nope\n")
    done = gridlink(cli_env, "tags", "import", str(source))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "line 3: rejected: status must be one of Accepted, Blocked, Expired, Invalid",
        "created 1, updated 0, rejected 1"]
    missing = gridlink(cli_env, "stations", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "cannot read it" in missing.stderr
    stations_file = write(tmp_path / "st.jsonl", '{"id": "CP-A", "securityProfile": 2}\n')
    added = gridlink(cli_env, "stations", "import", str(stations_file))
    assert added.returncode == 0, added.stderr
    assert "CP-A  AuthorizationKey " in added.stdout and "created 1," in added.stdout
    assert await db.stations.count_documents({"_id": "CP-A", "security_profile": 2}) == 1


async def test_tags_add_takes_many_tags(cli_env: dict[str, str],
                                        db: AsyncDatabase[dict[str, Any]]) -> None:
    done = gridlink(cli_env, "tags", "add", "A", "B", "C", "A", "--status", "Blocked")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3 tags saved (3 new, 0 updated)"
    assert {doc["_id"]: doc["status"] async for doc in db.id_tags.find({})} == \
        {"A": "Blocked", "B": "Blocked", "C": "Blocked"}
    refused = gridlink(cli_env, "tags", "add", "D", "X" * 21)
    assert refused.returncode == 2 and "at most 20 characters" in refused.stderr
    assert await db.id_tags.count_documents({"_id": "D"}) == 0
