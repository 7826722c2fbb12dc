"""Fewer socket writes to RabbitMQ: the frames of one event-loop turn go out in one write.

aiormq writes each frame it takes from a connection's write queue with its own
``StreamWriter.write``, which on uvloop is a ``send`` system call each: under load, the
publishes (replies, events) and acks of many messages cost a system call each, the hottest
frame of every GridLink process's profile. :class:`CorkedWriter` collects what is written
during one turn of the event loop and hands it to the transport once, at the end of the turn
(``loop.call_soon``); ``drain`` (aiormq waits for it on frames whose sender waits) and
``close`` hand it over first, so nothing is held back past a point someone waits for.

aiormq takes the factory of its transport from the module's ``TCPTransportFactory`` /
``TLSTransportFactory`` names when a connection is made (aio-pika passes no factory of its
own through): :func:`install` puts subclasses there whose writers are corked, once per
process. Only the framing changes: the bytes on the wire and their order are the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq.connection as _aiormq_connection


class CorkedWriter:
    """A ``StreamWriter`` whose writes within one loop turn go to the transport as one."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def flush(self) -> None:
        """Hand what was written to the transport (no-op when nothing is pending)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        self.flush()
        await self._writer.drain()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def write_eof(self) -> None:
        self.flush()
        self._writer.write_eof()

    def __getattr__(self, name: str) -> Any:  # is_closing, wait_closed, transport, ...
        return getattr(self._writer, name)


def _corked(base: type) -> type:
    class Corked(base):  # type: ignore[misc, valid-type]
        async def create(self, url: Any, **kwargs: Any) -> tuple[Any, Any]:
            reader, writer = await super().create(url, **kwargs)
            return reader, CorkedWriter(writer)

    Corked.__name__ = Corked.__qualname__ = f"Corked{base.__name__}"
    return Corked


def install() -> bool:
    """Make aiormq's new connections cork their writes (idempotent); False if this aiormq
    has no transport factories to replace (its writes then stay one per frame)."""
    module: Any = _aiormq_connection
    tcp = getattr(module, "TCPTransportFactory", None)
    tls = getattr(module, "TLSTransportFactory", None)
    if tcp is None or tls is None:
        return False
    if getattr(tcp, "corked", False):
        return True
    for name, base in (("TCPTransportFactory", tcp), ("TLSTransportFactory", tls)):
        corked = _corked(base)
        corked.corked = True  # type: ignore[attr-defined]
        setattr(module, name, corked)
    return True
