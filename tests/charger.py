"""A charger for tests: raw OCPP-J frames over a real WebSocket, with full control of ids.

``call()`` sends a CALL and returns the answer frame; CSMS-initiated CALLs that arrive
meanwhile are queued in ``incoming`` and answered by the test with ``answer()``.

If reading fails for any other reason than the connection closing (a frame that is not
JSON, a bug here), the failure is kept and raised by the next ``call()``,
``next_csms_call()`` or wait on an answer — a test fails with the cause, not with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.ocpp16 import iso, utcnow


class ReaderFailed(AssertionError):
    """The charger's reader stopped on something other than the connection closing."""


class Charger:
    def __init__(self, connection: ClientConnection) -> None:
        self.ws = connection
        self.incoming: asyncio.Queue[list[Any]] = asyncio.Queue()
        self.answers: dict[str, asyncio.Future[list[Any]]] = {}
        self.unsolicited: asyncio.Queue[list[Any]] = asyncio.Queue()
        self.failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, base_url: str, station: str, **kwargs: Any) -> Any:
        kwargs.setdefault("subprotocols", ["ocpp1.6"])
        async with connect(f"{base_url}/{quote(station, safe='')}", **kwargs) as ws:
            charger = cls(ws)
            try:
                yield charger
            finally:
                charger._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await charger._reader

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame[0] == 2:
                    await self.incoming.put(frame)
                elif frame[1] in self.answers and not self.answers[frame[1]].done():
                    self.answers[frame[1]].set_result(frame)
                else:
                    await self.unsolicited.put(frame)
        except ConnectionClosed:
            return  # the test looks at the close code if it cares
        except Exception as exc:
            self.failure = exc
            self._failed.set()
            for future in self.answers.values():
                if not future.done():
                    future.set_exception(ReaderFailed(f"the charger's reader failed: {exc!r}"))

    def _check(self) -> None:
        if self.failure is not None:
            raise ReaderFailed(f"the charger's reader failed: {self.failure!r}") from \
                self.failure

    async def _first(self, awaitable: Any, timeout: float) -> Any:
        """The result of ``awaitable``, unless the reader fails first (then its failure)."""
        task = asyncio.ensure_future(awaitable)
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            done, _ = await asyncio.wait({task, failed}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if task in done:
            return task.result()
        task.cancel()
        self._check()
        raise TimeoutError(f"no answer within {timeout:g} s")

    async def send_raw(self, text: str | bytes, answer_id: str | None = None,
                       timeout: float = 10) -> list[Any] | None:
        """Send any text; wait for the answer with ``answer_id`` if given."""
        self._check()
        future: asyncio.Future[list[Any]] | None = None
        if answer_id is not None:
            future = asyncio.get_running_loop().create_future()
            self.answers[answer_id] = future
        await self.ws.send(text)
        return await asyncio.wait_for(future, timeout) if future else None

    async def call(self, action: str, payload: dict[str, Any], *, unique_id: str | None = None,
                   timeout: float = 10) -> list[Any]:
        unique_id = unique_id or uuid.uuid4().hex
        frame = await self.send_raw(json.dumps([2, unique_id, action, payload]), unique_id,
                                    timeout)
        assert frame is not None
        return frame

    async def result(self, action: str, payload: dict[str, Any], **kwargs: Any
                     ) -> dict[str, Any]:
        """A CALL that must be answered with a CALLRESULT: its payload."""
        frame = await self.call(action, payload, **kwargs)
        assert frame[0] == 3, f"expected CALLRESULT for {action}, got {frame}"
        return frame[2]

    async def boot(self) -> dict[str, Any]:
        return await self.result("BootNotification", {"chargePointVendor": "Test",
                                                      "chargePointModel": "T1"})

    async def next_csms_call(self, timeout: float = 10) -> list[Any]:
        self._check()
        return await self._first(self.incoming.get(), timeout)  # type: ignore[no-any-return]

    async def answer(self, frame: list[Any]) -> None:
        await self.ws.send(json.dumps(frame))


def now() -> str:
    return iso(utcnow())
