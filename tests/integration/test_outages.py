"""A database outage loses nothing: the gateway closes chargers (1013) instead of answering
errors, reports not-ready, refuses handshakes, and everything resumes when it is back."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from gridlink import embedded_db
from tests.charger import Charger, now
from tests.helpers import delete_namespace
from tests.processes import Stack, answers, free_port, wait_for

pytestmark = pytest.mark.integration


async def test_database_outage_loses_nothing(amqp_url: str, tmp_path: Path) -> None:
    port = free_port()
    storage = str(tmp_path / "db")
    database = embedded_db.start(port, storage)
    assert database is not None
    namespace = f"gloutage-{uuid.uuid4().hex[:8]}"
    stack = Stack(amqp_url=amqp_url, mongo_url=embedded_db.url(port), namespace=namespace,
                  database="outage", logs=tmp_path)
    try:
        await stack.start_services()
        gateway = await stack.start_gateway()
        station, tag = "OUTAGE-1", "TAG-OUT"
        assert (await stack.cli("stations", "add", station))[0] == 0
        assert (await stack.cli("tags", "add", tag))[0] == 0
        readyz = f"http://127.0.0.1:{gateway.port}/readyz"
        stop = {"meterStop": 4200, "timestamp": now(), "reason": "Local"}
        async with Charger.connect(stack.gateway_url, station) as charger:
            await charger.boot()
            start = await charger.result("StartTransaction", {
                "connectorId": 1, "idTag": tag, "meterStart": 200, "timestamp": now()})
            tx = start["transactionId"]
            stop["transactionId"] = tx

            database.send_signal(signal.SIGTERM)  # the database goes away
            database.wait(30)
            # The charger sends its stop; it must never get a CALLERROR for it.
            await charger.ws.send(json.dumps([2, "stop-1", "StopTransaction", stop]))
            await asyncio.wait_for(charger.ws.wait_closed(), 30)
            assert charger.ws.close_code == 1013
            assert charger.unsolicited.empty()  # no CALLERROR, no answer at all

        await wait_for(lambda: answers(readyz, 503), what="gateway not ready")
        with pytest.raises(InvalidStatus) as refused:
            async with Charger.connect(stack.gateway_url, station):
                pass
        assert refused.value.response.status_code == 503

        database = embedded_db.start(port, storage)  # the database is back
        assert database is not None
        await wait_for(lambda: answers(readyz, 200), timeout=60, what="gateway ready")

        db = stack.db()

        async def stop_recorded() -> bool:
            doc = await db.transactions.find_one({"_id": tx})
            return doc is not None and doc.get("stop") is not None

        await wait_for(stop_recorded, timeout=30, what="the queued stop to be stored")
        async with Charger.connect(stack.gateway_url, station) as charger:
            # The charger resends the stop it never got an answer for: same outcome.
            assert await charger.result("StopTransaction", stop) == {}
        doc = await db.transactions.find_one({"_id": tx})
        assert doc["energy_wh"] == 4000
        assert await db.transactions.count_documents({}) == 1
    finally:
        await stack.stop()
        if database.poll() is None:
            database.terminate()
            database.wait(10)
        await delete_namespace(amqp_url, namespace)

