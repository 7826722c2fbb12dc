"""The id-tag store: a tag's concurrent-session limit is kept unless it is given."""

from __future__ import annotations

import pytest

from services import id_tags
from services.memory import memory_store


async def test_max_concurrent_defaults_to_one_and_is_kept_unless_given() -> None:
    db = memory_store().db
    await id_tags.upsert_tag(db, "T", status="Accepted", expiry=None, parent=None)
    assert id_tags.max_concurrent(await id_tags.find_tag(db, "T")) == 1
    await id_tags.upsert_tag(db, "T", status="Accepted", expiry=None, parent=None,
                             max_concurrent=4)
    await id_tags.upsert_tag(db, "T", status="Blocked", expiry=None, parent=None)
    stored = await id_tags.find_tag(db, "T")
    assert stored is not None and (stored["status"], stored["max_concurrent"]) == (
        "Blocked", 4)
    assert id_tags.max_concurrent(None) == 1
    assert id_tags.max_concurrent({"max_concurrent": 0}) == 1  # never below one
    with pytest.raises(ValueError, match="max_concurrent"):
        await id_tags.upsert_tag(db, "T", status="Accepted", expiry=None, parent=None,
                                 max_concurrent=0)
