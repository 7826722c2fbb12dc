"""The handler of the gateways' admission questions (``rpc.connect``, authz's fast lane): a
batch of handshakes in, the :class:`authz.gatekeeper.Gatekeeper`'s decisions out, as they
are made when the gateway takes partial answers, into the asking gateway's queue only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from authz.gatekeeper import Gatekeeper
from authz.repository import AuthzRepository
from services.bus import decode_json
from services.envelope import ConnectBatch, ConnectDecision, ConnectDecisions, ConnectRequest
from services.errors import Reject
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.authz.admission")


class Admission:
    """The handler of the gateways' admission questions (``rpc.connect``, the fast lane)."""

    def __init__(self, runtime: ServiceRuntime, repo: AuthzRepository) -> None:
        self.runtime = runtime
        self.repo = repo
        self._tasks: set[asyncio.Task[Any]] = set()
        self.gatekeeper = Gatekeeper.from_settings(repo, runtime.settings, self._spawn)

    def _spawn(self, work: Any) -> None:
        self._track(asyncio.ensure_future(work))

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Keep a reference until it is done (decisions past the deadline still finish)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Answer a gateway's :class:`ConnectBatch` (a single :class:`ConnectRequest` from a
        gateway of an earlier release is answered alike). With ``partial`` the decisions go
        back as they are made, so a handshake never waits for another one's password hash.
        Past the admission timeout there is no answer: the gateway refused with 503."""
        runtime = self.runtime
        batch = _connect_batch(message)
        deadline = asyncio.get_running_loop().time() + runtime.settings.connect_timeout_s
        now = utcnow()
        documents = await runtime.with_store(
            lambda: self.repo.admission_documents([r.station for r in batch.requests]))
        tasks = [self._track(asyncio.ensure_future(runtime.with_store(
            lambda r=request: self.gatekeeper.decide(r, documents.get(r.station), now))))
            for request in batch.requests]
        try:
            if batch.partial and not batch.single:
                await self._answer_as_decided(message, tasks, deadline)
            else:
                remaining = deadline - asyncio.get_running_loop().time()
                decisions = await asyncio.wait_for(asyncio.gather(*tasks), max(0.0, remaining))
                if batch.single:
                    await self._reply(message, decisions[0].to_bytes())
                else:
                    await self._reply(message, ConnectDecisions(decisions=decisions).to_bytes())
        except TimeoutError:
            return  # the gateway gave up already and refused with 503 (the rest finish)

    async def _answer_as_decided(self, message: AbstractIncomingMessage,
                                 tasks: list[asyncio.Task[ConnectDecision]], deadline: float
                                 ) -> None:
        loop = asyncio.get_running_loop()
        index = {task: n for n, task in enumerate(tasks)}
        pending: set[asyncio.Task[ConnectDecision]] = set(tasks)
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            done, pending = await asyncio.wait(pending, timeout=remaining,
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise TimeoutError
            await asyncio.sleep(0)  # decisions finishing together go in one answer
            more = {task for task in pending if task.done()}
            done, pending = done | more, pending - more
            ordered = sorted(done, key=index.__getitem__)
            answer = ConnectDecisions(decisions=[task.result() for task in ordered],
                                      indices=[index[task] for task in ordered])
            await self._reply(message, answer.to_bytes())

    async def _reply(self, message: AbstractIncomingMessage, body: bytes) -> None:
        """Answer into the asking gateway's queue — and no other queue, whatever
        ``reply_to`` says (decisions are nobody else's business)."""
        reply_to = message.reply_to
        if not reply_to:
            return
        if not reply_to.startswith(self.runtime.topology.gateway_queue("")):
            log.warning("admission question with a reply queue that is no gateway's dropped",
                        extra={"reply_to": reply_to[:200]})
            return
        await self.runtime.bus.publish("", reply_to, body,
                                       correlation_id=message.correlation_id, persistent=False)


class _Admission(ConnectBatch):
    single: bool = False  # the question was a lone ConnectRequest


def _connect_batch(message: AbstractIncomingMessage) -> _Admission:
    try:
        raw = json.loads(message.body)
    except ValueError:
        raise Reject("malformed admission request: not JSON") from None
    if isinstance(raw, dict) and "requests" in raw:
        batch = decode_json(message, ConnectBatch)
        return _Admission(requests=batch.requests, partial=batch.partial)
    return _Admission(requests=[decode_json(message, ConnectRequest)], single=True)
