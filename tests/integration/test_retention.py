"""The running services apply the retention settings to the stack's database."""

from __future__ import annotations

from services.retention import INDEX_NAME
from tests.processes import Stack

DAY = 86_400


async def test_the_services_create_the_retention_indexes(stack: Stack) -> None:
    db = stack.db()
    expected = {"status_events": 90 * DAY, "data_transfers": 90 * DAY,
                "security_events": 365 * DAY, "meter_values": None}  # the defaults
    found = {}
    for collection in expected:
        index = (await db[collection].index_information()).get(INDEX_NAME)
        found[collection] = None if index is None else index["expireAfterSeconds"]
    assert found == expected
