"""``gridlink stations add|list``: security profiles, generated keys printed once, one-line
refusals — the command line as an operator runs it, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from services import stations


@pytest.fixture
def database(mongo_url: str) -> Any:
    name = f"cli_{uuid.uuid4().hex[:10]}"
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    yield name, client[name]
    client.drop_database(name)
    client.close()


def gridlink(database: tuple[str, Any], mongo_url: str, *args: str, **env: str
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridlink", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "GRIDLINK_MONGO_URL": mongo_url, "GRIDLINK_MONGO_DB": database[0],
             **env})


def test_profile_1_without_a_password_gets_its_own_key_printed_once(
        database: tuple[str, Any], mongo_url: str) -> None:
    result = gridlink(database, mongo_url, "stations", "add", "CP-A", "CP-B",
                      "--security-profile", "1")
    assert result.returncode == 0, result.stderr
    keys = {line.split()[0]: line.split()[2] for line in result.stdout.splitlines()
            if "AuthorizationKey" in line}
    assert set(keys) == {"CP-A", "CP-B"} and keys["CP-A"] != keys["CP-B"]
    documents = {d["_id"]: d for d in database[1].stations.find()}
    for station, key in keys.items():
        assert len(key) == 40
        assert documents[station]["security_profile"] == 1
        assert stations.check_password(key, documents[station]["password_hash"])
        assert key not in str(documents[station])  # only the hash is stored
    again = gridlink(database, mongo_url, "stations", "add", "CP-A", "--security-profile", "2")
    assert again.returncode == 0 and "AuthorizationKey" not in again.stdout  # it keeps its key
    assert database[1].stations.find_one({"_id": "CP-A"})["password_hash"] == documents[
        "CP-A"]["password_hash"]


def test_password_file_and_certificate_identity_and_the_list(
        database: tuple[str, Any], mongo_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file-0123456789\n")
    assert gridlink(database, mongo_url, "stations", "add", "CP-F", "--security-profile", "2",
                    "--password-file", str(secret)).returncode == 0
    assert gridlink(database, mongo_url, "stations", "add", "CP-3", "--security-profile", "3",
                    "--certificate-cn", "cp-3.example.com").returncode == 0
    stored = database[1].stations.find_one({"_id": "CP-F"})
    assert stations.check_password("from-a-file-0123456789", stored["password_hash"])
    listed = gridlink(database, mongo_url, "stations", "list", "--json")
    import json

    rows = {r["chargePointId"]: r for r in json.loads(listed.stdout)}
    assert (rows["CP-F"]["securityProfile"], rows["CP-F"]["password"]) == (2, "set")
    assert (rows["CP-3"]["securityProfile"], rows["CP-3"]["certificateCn"]) == (
        3, "cp-3.example.com")


def test_without_a_profile_a_password_means_1_and_none_means_0(
        database: tuple[str, Any], mongo_url: str) -> None:
    with_key = gridlink(database, mongo_url, "stations", "add", "CP-K", "--password",
                        "given-key-0123456789")
    bare = gridlink(database, mongo_url, "stations", "add", "CP-0")
    assert with_key.returncode == bare.returncode == 0
    assert "GRIDLINK_ALLOW_SECURITY_PROFILE_0" in bare.stderr  # it cannot connect here
    profiles = {d["_id"]: d["security_profile"] for d in database[1].stations.find()}
    assert profiles == {"CP-K": 1, "CP-0": 0}


@pytest.mark.parametrize(("args", "needle"), [
    (["CP-1", "--password", "short"], "16 to 40 characters"),
    (["CP-1", "CP-2", "--password", "shared-key-0123456789"], "each should have its own"),
    (["CP-1", "--security-profile", "3", "--password", "given-key-0123456789"],
     "does not use one"),
    (["CP-1", "--security-profile", "4"], "invalid choice"),
    (["CP-1", "--password-file", "/nonexistent/key"], "--password-file: cannot read it"),
    (["CP-1", "--password", "a", "--password-file", "f"], "not allowed with"),
])
def test_bad_arguments_are_one_line_and_change_nothing(
        database: tuple[str, Any], mongo_url: str, args: list[str], needle: str) -> None:
    result = gridlink(database, mongo_url, "stations", "add", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert database[1].stations.count_documents({}) == 0


@pytest.mark.parametrize(("station", "needle"), [
    ("CP\x7f1", "U+007F"),
    ("CP\u202e1", "RIGHT-TO-LEFT OVERRIDE"),
    ("CP\u200b1", "ZERO WIDTH SPACE"),
    ("CP-1 ", "ends with a space"),
    ("CP  1", "two spaces"),
    ("CP/1", "SOLIDUS"),
    ("C" * 49, "at most 48"),
])
def test_an_id_the_gateway_would_refuse_is_refused_in_one_line(
        database: tuple[str, Any], mongo_url: str, station: str, needle: str) -> None:
    result = gridlink(database, mongo_url, "stations", "add", "CP-OK", station)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert database[1].stations.count_documents({}) == 0  # not even the good one


def test_an_id_is_stored_in_nfc_as_the_gateway_looks_it_up(
        database: tuple[str, Any], mongo_url: str) -> None:
    result = gridlink(database, mongo_url, "stations", "add", "Cafe\u0301 1")
    assert result.returncode == 0, result.stderr
    assert [d["_id"] for d in database[1].stations.find()] == ["Caf\u00e9 1"]
