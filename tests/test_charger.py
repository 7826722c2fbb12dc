"""The test charger itself: a reader that fails makes the test fail with the cause."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.charger import Charger, ReaderFailed


async def test_a_broken_frame_fails_the_waiting_call_with_its_cause() -> None:
    async def csms(connection: ServerConnection) -> None:
        async for raw in connection:
            unique_id = json.loads(raw)[1]
            await connection.send(json.dumps([3, unique_id, {"currentTime": "now"}]))
            await connection.send("this is not JSON")

    async with serve(csms, "127.0.0.1", 0,
                     subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        async with Charger.connect(f"ws://127.0.0.1:{port}/ocpp", "CP-1") as charger:
            assert await charger.result("Heartbeat", {}) == {"currentTime": "now"}
            # ReaderFailed, not TimeoutError: the cause arrives at once.
            with pytest.raises(ReaderFailed, match="JSONDecodeError"):
                await charger.call("Heartbeat", {}, timeout=30)
            with pytest.raises(ReaderFailed):
                await charger.next_csms_call(timeout=30)
