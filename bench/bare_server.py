"""The floor for the connections benchmark: a bare ``websockets`` server with canned answers.

It accepts any ``/ocpp/{id}`` with subprotocol ``ocpp1.6`` and answers every CALL with a fixed,
schema-valid CALLRESULT for its action: no validation, no state, no broker, no database.
What it costs per connection is what any Python WebSocket server costs.

    python -m bench.bare_server --port 9200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from datetime import UTC, datetime

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

_NOW = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
ANSWERS = {
    "BootNotification": {"status": "Accepted", "currentTime": _NOW, "interval": 300},
    "Heartbeat": {"currentTime": _NOW},
    "Authorize": {"idTagInfo": {"status": "Accepted"}},
    "StartTransaction": {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
}
ENCODED = {action: json.dumps(answer, separators=(",", ":")) for action, answer in ANSWERS.items()}


async def handle(connection: ServerConnection) -> None:
    """Answer each CALL with the canned CALLRESULT of its action (``{}`` by default)."""
    with contextlib.suppress(ConnectionClosed):
        async for message in connection:
            frame = json.loads(message)
            if frame[0] == 2:
                body = ENCODED.get(frame[2], "{}")
                await connection.send(f"[3,{json.dumps(frame[1])},{body}]")


async def main(port: int) -> None:
    """Serve until SIGTERM/SIGINT."""
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handle,
        "127.0.0.1",
        port,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        ping_interval=60,
        ping_timeout=60,
    ):
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9200)
    from simulator.resources import raise_file_limit

    raise_file_limit()
    asyncio.run(main(parser.parse_args().port))
