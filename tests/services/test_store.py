"""The write concern every GridLink write carries: read from the settings, safe by default,
never weakened for a single write anywhere in GridLink's code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services.errors import ConfigurationError
from services.settings import load_settings
from services.store import DURABLE, Store, client_for, write_concern

ROOT = Path(__file__).resolve().parents[2]
GRIDLINK = ("services", "gateway", "authz", "transactions", "commands", "gridlink")


def test_the_default_is_journaled_on_a_majority() -> None:
    assert write_concern(load_settings()).document == {"w": "majority", "j": True}
    assert DURABLE.document == {"w": "majority", "j": True}


def test_the_write_concern_is_configurable_but_never_unacknowledged() -> None:
    assert write_concern(load_settings(mongo_write_concern="2")).document == {"w": 2, "j": True}
    assert write_concern(load_settings(mongo_journal=False)).document == {
        "w": "majority", "j": False}
    assert write_concern(load_settings(mongo_write_concern="dc-east")).document["w"] == "dc-east"
    for unacknowledged in ("0", "", "00"):
        with pytest.raises(ConfigurationError, match="GRIDLINK_MONGO_WRITE_CONCERN"):
            load_settings(mongo_write_concern=unacknowledged)


async def test_the_settings_override_the_url() -> None:
    client = client_for("mongodb://127.0.0.1:1/?w=1&journal=false", app_name="test")
    try:
        assert client.write_concern.document == {"w": "majority", "j": True}
        assert client["db"]["collection"].write_concern == DURABLE  # inherited
    finally:
        await client.close()
    store = Store("mongodb://127.0.0.1:1/", "db", component="test",
                  concern=write_concern(load_settings(mongo_write_concern="3")))
    try:
        assert store.db.write_concern.document == {"w": 3, "j": True}
    finally:
        await store.close()


def _weakenings(path: Path) -> list[str]:
    """Where a module picks a write concern of its own (WriteConcern, write_concern=, w=)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        named = (node.id if isinstance(node, ast.Name) else
                 node.attr if isinstance(node, ast.Attribute) else None)
        if isinstance(node, ast.ImportFrom):
            named = next((a.name for a in node.names if a.name == "WriteConcern"), None)
        if named == "WriteConcern":
            found.append(f"{path}:{node.lineno}: WriteConcern")
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in ("write_concern", "w", "journal", "j"):
                    found.append(f"{path}:{node.lineno}: {keyword.arg}=")
    return found


def test_no_gridlink_code_picks_another_write_concern() -> None:
    """One write concern, on the client (services/store.py): no write of a reply's can be
    made weaker (w=0, j=false) by a collection or a call of its own."""
    found = []
    for package in GRIDLINK:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != ROOT / "services" / "store.py":
                found += _weakenings(path)
    assert found == []


def test_the_check_finds_a_weakened_write(tmp_path: Path) -> None:
    module = tmp_path / "weak.py"
    module.write_text("from pymongo import WriteConcern\n"
                      "async def f(db):\n"
                      "    weak = db.c.with_options(write_concern=WriteConcern(w=0))\n"
                      "    await weak.insert_one({})\n")
    assert len(_weakenings(module)) == 4  # the import, its use, write_concern=, w=
