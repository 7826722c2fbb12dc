"""A TCP proxy the harness controls, between a service and RabbitMQ or MongoDB: it can
pause the traffic (connections stay open, nothing flows: a network partition), drop every
connection at once (a reset), or delay what it forwards (a slow link).

Small and in the test tree: no toxiproxy package is installed here, and what the scenarios
need is these three faults on loopback::

    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()                  # proxy.port forwards to 127.0.0.1:5672
    proxy.pause(); ...; proxy.resume()
    proxy.drop()
    proxy.delay_s = 0.2; ...; proxy.delay_s = 0.0
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``host``:``target_port``; see the module docstring."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host, self.target_port = host, target_port
        self.port = 0
        self.delay_s = 0.0
        self.connections = 0  # accepted so far
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def pause(self) -> None:
        """Stop forwarding in both directions; connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def drop(self) -> None:
        """Reset every open connection (new ones are accepted as before)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pumps = [asyncio.create_task(self._pump(reader, up_writer)),
                 asyncio.create_task(self._pump(up_reader, writer))]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                await self._flowing.wait()
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)  # the link's latency: the fault itself
                writer.write(data)
                await writer.drain()
