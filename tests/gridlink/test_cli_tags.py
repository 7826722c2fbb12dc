"""``gridlink tags add --max-concurrent`` and ``gridlink transactions list|samples``: the
command line as an operator runs it, against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient


@pytest.fixture
def database(mongo_url: str) -> Iterator[tuple[str, Any]]:
    name = f"cli_{uuid.uuid4().hex[:10]}"
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, tz_aware=True)
    yield name, client[name]
    client.drop_database(name)
    client.close()


def gridlink(database: tuple[str, Any], mongo_url: str, *args: str
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridlink", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "GRIDLINK_MONGO_URL": mongo_url, "GRIDLINK_MONGO_DB": database[0]})


def rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_tags_limit_is_stored_listed_and_kept(database: tuple[str, Any],
                                               mongo_url: str) -> None:
    assert gridlink(database, mongo_url, "tags", "add", "FLEET", "--max-concurrent", "3"
                    ).returncode == 0
    assert gridlink(database, mongo_url, "tags", "add", "ONE").returncode == 0
    assert gridlink(database, mongo_url, "tags", "add", "FLEET", "--status", "Blocked"
                    ).returncode == 0  # updated without the option: the limit stays
    listed = {row["idTag"]: row for row in rows(gridlink(database, mongo_url, "tags", "list",
                                                         "--json"))}
    assert (listed["FLEET"]["maxConcurrent"], listed["FLEET"]["status"]) == (3, "Blocked")
    assert listed["ONE"]["maxConcurrent"] == 1
    table = gridlink(database, mongo_url, "tags", "list").stdout.splitlines()
    assert "maxConcurrent" in table[0]
    for bad, needle in (("0", "--max-concurrent must be 1..1000"),
                        ("1001", "--max-concurrent must be 1..1000"),
                        ("many", "invalid int value")):
        refused = gridlink(database, mongo_url, "tags", "add", "FLEET", "--max-concurrent", bad)
        assert refused.returncode == 2 and refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1 and needle in refused.stderr
    assert database[1].id_tags.find_one({"_id": "FLEET"})["max_concurrent"] == 3


def test_transactions_show_their_state_and_flags(database: tuple[str, Any],
                                                 mongo_url: str) -> None:
    at = datetime(2026, 6, 1, 11, tzinfo=UTC)
    base = {"station": "CP-1", "connector": 1, "id_tag": "T", "meter_start": 0,
            "start_time": at, "id_tag_info": {"status": "Accepted"}, "received_at": at}
    database[1].transactions.insert_many([
        {**base, "_id": 1, "start_key": "a", "active": False, "stop": None, "flags":
         ["superseded"], "superseded": {"by": 2, "at": at, "energy_wh": None}},
        {**base, "_id": 2, "start_key": "b", "active": True, "stop": None, "flags": []},
        {**base, "_id": 3, "start_key": "c", "station": "CP-2", "active": True, "stop": None},
    ])
    database[1].meter_values.insert_many([
        {"_id": "s1", "station": "CP-1", "connector": 1, "transaction_id": 2,
         "timestamp": at, "measurand": "Voltage", "value": "NaN", "flags": ["not_finite"]},
        {"_id": "s2", "station": "CP-1", "connector": 1, "transaction_id": 2,
         "timestamp": at, "measurand": "Voltage", "value": "230"},
        {"_id": "s3", "station": "CP-1", "connector": 1, "transaction_id": None,
         "claimed_transaction_id": 3, "timestamp": at, "measurand": "Voltage", "value": "1",
         "flags": ["other_station_transaction"]},
    ])
    listed = rows(gridlink(database, mongo_url, "transactions", "list", "--json"))
    assert [(r["transactionId"], r["state"], r["supersededBy"], r["flags"]) for r in listed] == [
        (1, "superseded", 2, ["superseded"]), (2, "active", None, ["meter:not_finite"]),
        (3, "active", None, [])]
    flagged = rows(gridlink(database, mongo_url, "transactions", "list", "--flagged", "--json"))
    assert [r["transactionId"] for r in flagged] == [1, 2]
    table = gridlink(database, mongo_url, "transactions", "list", "--station", "CP-1").stdout
    assert "superseded" in table and "meter:not_finite" in table and "CP-2" not in table
    samples = rows(gridlink(database, mongo_url, "transactions", "samples", "--flagged",
                            "--json"))
    assert sorted((s["value"], s["transactionId"], s["claimedTransactionId"], s["flags"][0])
                  for s in samples) == [("1", None, 3, "other_station_transaction"),
                                        ("NaN", 2, None, "not_finite")]
    naming = rows(gridlink(database, mongo_url, "transactions", "samples", "--transaction",
                           "3", "--json"))
    assert [s["value"] for s in naming] == ["1"]
