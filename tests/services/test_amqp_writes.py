"""The corked AMQP writer: what one event-loop turn writes goes to the socket as one write,
in order, and nothing is held past a drain or a close. Over a real TCP connection."""

from __future__ import annotations

import asyncio

import aiormq.connection

from services import amqp_writes


class _Counting:
    """The StreamWriter the corked one wraps, counting the writes it is handed."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.writer.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.writer, name)


async def test_one_turns_writes_go_out_as_one_in_order() -> None:
    received = bytearray()
    got_all = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)
            if len(received) >= 3 + 2:
                got_all.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, raw = await asyncio.open_connection("127.0.0.1", port)
    counting = _Counting(raw)
    corked = amqp_writes.CorkedWriter(counting)  # type: ignore[arg-type]
    for part in (b"a", b"b", b"c"):
        corked.write(part)
    assert counting.writes == 0  # held until the turn ends
    await asyncio.sleep(0)
    assert counting.writes == 1
    corked.write(b"d")
    corked.write(b"e")
    await corked.drain()  # a drain hands over what is pending first
    assert counting.writes == 2
    await asyncio.wait_for(got_all.wait(), 5)
    assert bytes(received) == b"abcde"
    corked.close()
    server.close()
    await server.wait_closed()


def test_install_corks_aiormqs_new_connections() -> None:
    assert amqp_writes.install()
    assert amqp_writes.install()  # idempotent
    assert getattr(aiormq.connection.TCPTransportFactory, "corked", False)
    assert getattr(aiormq.connection.TLSTransportFactory, "corked", False)
