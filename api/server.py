"""Running the API (``python -m api``, ``gridlink run api``): uvicorn inside the
component's own event loop.

Start-up: probes on GRIDLINK_HTTP_PORT (``/healthz``, ``/readyz``, ``/metrics``, as every
service), then RabbitMQ (the command path, :class:`~services.command_requests.
CommandRequester`) and MongoDB (indexes, retention), retrying until both answer; then the
API listens on GRIDLINK_API_HOST:GRIDLINK_API_PORT. ``/readyz`` (on both ports) is false
until both are reachable, and again whenever either is lost.

SIGTERM/SIGINT (:mod:`services.shutdown`): not ready, uvicorn stops accepting and lets
requests in flight finish within GRIDLINK_SHUTDOWN_GRACE_S, then the background jobs are
cancelled and the connections closed; a second signal exits at once. Logs are GridLink's
JSON lines (uvicorn's own loggers included; its access log is replaced by
:mod:`api.audit`'s one line per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from api.app import create_app
from api.context import ApiContext
from api.parts import Job
from services.command_requests import CommandRequester
from services.errors import GridLinkError
from services.http_probe import ProbeServer
from services.retention import ensure_retention
from services.settings import Settings, effective_mongo_url
from services.shutdown import install_signal_handlers
from services.store import Store, write_concern
from services.supervision import supervised

log = logging.getLogger("gridlink.api")
HEALTH_INTERVAL_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the component's handlers decide."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def make_context(settings: Settings) -> ApiContext:
    store = Store(effective_mongo_url(settings), settings.mongo_db, component="api",
                  concern=write_concern(settings))
    return ApiContext(settings, store, CommandRequester(settings, component="api"))


async def prepare(ctx: ApiContext, app: Any) -> None:
    """Connect to the broker and the database (retrying), make indexes and retention."""
    await ctx.requester.connect(attempts=None)
    await ctx.store.wait_until_up()
    for part in app.state.parts:
        await ctx.store.ensure_indexes(part.indexes)
        await ensure_retention(ctx.db, part.retention)
    ctx.store_ok = True


async def _watch_store(ctx: ApiContext) -> None:
    while True:
        ok = await ctx.store.ping()
        if ok != ctx.store_ok:
            log.warning("mongodb reachable again" if ok else "mongodb unreachable")
        ctx.store_ok = ok
        await asyncio.sleep(HEALTH_INTERVAL_S)


def _supervised(job: Job, ctx: ApiContext) -> asyncio.Task[None]:
    return supervised(lambda: job(ctx))


def listen(settings: Settings) -> socket.socket:
    """The API's listening socket (bound now: a port in use is one line, exit 1)."""
    try:
        infos = socket.getaddrinfo(settings.api_host, settings.api_port,
                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise GridLinkError(f"cannot listen on {settings.api_host}:{settings.api_port} "
                            f"(GRIDLINK_API_HOST, GRIDLINK_API_PORT): {exc.strerror or exc}"
                            ) from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


async def run_api(settings: Settings) -> None:
    ctx = make_context(settings)
    app = create_app(ctx)
    listening = listen(settings)
    stopping = asyncio.Event()
    install_signal_handlers(stopping)
    probes = ProbeServer(settings.http_host, settings.http_port, ctx.readiness)
    probes.start()
    tasks: list[asyncio.Task[Any]] = []
    try:
        preparing = asyncio.create_task(prepare(ctx, app))
        stop_wait = asyncio.create_task(stopping.wait())
        await asyncio.wait({preparing, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            preparing.cancel()
            await asyncio.gather(preparing, return_exceptions=True)
            return
        stop_wait.cancel()
        preparing.result()
        server = _Server(uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_config=None,
            access_log=False, lifespan="off", proxy_headers=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None))
        serving = asyncio.create_task(server.serve(sockets=[listening]))
        tasks.append(_supervised(_watch_store, ctx))
        for part in app.state.parts:
            tasks.extend(_supervised(job, ctx) for job in part.background)
        log.info("api started", extra={"url": f"http://{settings.api_host}:{settings.api_port}"})
        stop_wait = asyncio.create_task(stopping.wait())
        await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        ctx.stopping = True
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        stop_wait.cancel()
    finally:
        ctx.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ctx.requester.close()
        await ctx.store.close()
        probes.stop()
        listening.close()
        log.info("stopped")
