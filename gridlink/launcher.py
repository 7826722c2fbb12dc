"""``gridlink run all``: the embedded database (if no GRIDLINK_MONGO_URL) and the four
components as child processes, exactly as they run in production, one per process.

SIGTERM/SIGINT is passed on to every child once (each drains gracefully: the children run
in sessions of their own, so a Ctrl-C at the terminal reaches them only through the
launcher), and the launcher waits for all of them (:func:`services.shutdown.drain`); a
second signal is passed on too (the children then exit at once). A launcher killed
outright takes its children with it (PR_SET_PDEATHSIG). If one child dies the others are
stopped and the exit code says so; when every child has ended by itself, so does the
launcher.

The embedded database is kept too (:mod:`gridlink.database_keeper`): if it dies it is
started again with the same data directory and port, and the components recover by
themselves; it is stopped last, once the components have drained.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
from pathlib import Path

from gridlink import components
from gridlink.database_keeper import EmbeddedDatabase
from services.entry import run_loop
from services.settings import Settings, environment_with
from services.shutdown import InFlight, drain, install_signal_handlers

log = logging.getLogger("gridlink.launcher")

PR_SET_PDEATHSIG = 1  # prctl(2)

#: A child to run: its name, command line and environment.
Child = tuple[str, list[str], dict[str, str]]


def run_all(settings: Settings) -> int:
    """Run everything until a signal (or a child's failure) stops it; the exit code."""
    data = Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    database = None
    mongo_url = settings.mongo_url
    if not mongo_url:
        database = EmbeddedDatabase(settings.embedded_mongo_port, str(data / "db"),
                                    log_file=data / "secantusd.log",
                                    child_setup=_end_with_parent)
        database.start()
        mongo_url = database.url
        log.info("embedded database", extra={"url": mongo_url, "data": str(data / "db")})
    children = [
        (component, [sys.executable, "-m", component],
         environment_with(mongo_url=mongo_url, http_port=settings.http_port + offset,
                          instance=f"{settings.instance}-{component}"))
        for offset, component in enumerate(components.NAMES, start=1)]
    banner = run_banner(settings)
    code = [0]
    try:
        run_loop(_run(children, banner, code, database))
    finally:
        if database is not None:
            database.stop_now()
    return code[0]


def _end_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launcher dies (Linux; elsewhere a
    no-op)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_banner(settings: Settings) -> tuple[str, ...]:
    """What ``run all`` prints once the components started: where chargers connect, the
    probes, and — loudly — whether stations without credentials are accepted."""
    scheme = "wss" if settings.tls else "ws"
    url = settings.public_url or f"{scheme}://127.0.0.1:{settings.gateway_port}/ocpp"
    probes = f"{'https' if settings.tls else 'http'}://127.0.0.1:{settings.gateway_port}"
    lines = [f"GridLink is starting. Chargers connect to {url}/<chargePointId>",
             f"Probes: {probes}/readyz  (Ctrl-C stops)"]
    if settings.allow_security_profile_0:
        lines.append("WARNING: security profile 0 is ON (GRIDLINK_ALLOW_SECURITY_PROFILE_0): "
                     "stations without a password connect unauthenticated. Development only.")
    return tuple(lines)


async def _run(children: list[Child], banner: tuple[str, ...], code: list[int],
               database: EmbeddedDatabase | None) -> None:
    code[0] = await supervise(children, banner=banner, database=database)


async def supervise(children: list[Child], *, banner: tuple[str, ...] = (),
                    database: EmbeddedDatabase | None = None) -> int:
    """Start the children, print ``banner``, and run until they have all ended: 0, or 1 when
    one of them failed (the others are then stopped). ``database`` (started already) is
    restarted whenever it dies, and stopped once the children have ended."""
    started: dict[str, asyncio.subprocess.Process] = {}
    stopping = asyncio.Event()
    received = [signal.SIGTERM]  # the signal to pass on
    failed = [False]

    def forward(signum: int) -> None:
        for child in started.values():
            if child.returncode is None:
                child.send_signal(signum)

    def on_first(signum: int) -> None:
        received[0] = signal.Signals(signum)

    install_signal_handlers(stopping, on_first=on_first, on_second=forward)
    for name, argv, env in children:
        # Each child in a session of its own: a Ctrl-C (SIGINT to the terminal's process
        # group) reaches only the launcher, which passes it on once; the child still ends
        # with the launcher if that is killed outright.
        started[name] = await asyncio.create_subprocess_exec(
            *argv, env=env, start_new_session=True, preexec_fn=_end_with_parent)
    for line in banner:
        print(line, flush=True)
    running = InFlight()

    async def watch(name: str, child: asyncio.subprocess.Process) -> None:
        with running.track():
            returncode = await child.wait()
        if returncode != 0 and not stopping.is_set():
            log.error("component exited; stopping the others",
                      extra={"component_name": name, "code": returncode})
            failed[0] = True
            stopping.set()
        if running.count == 0:
            stopping.set()  # every child ended by itself: nothing is left to run

    watchers = [asyncio.create_task(watch(name, child)) for name, child in started.items()]
    keeper = asyncio.create_task(database.keep()) if database is not None else None

    async def stop_children() -> None:
        forward(received[0])

    await stopping.wait()
    await drain(stop_taking=stop_children, in_flight=running, grace_s=None,
                what="components", logger=log)
    await asyncio.gather(*watchers)
    if database is not None and keeper is not None:
        await database.stop()
        await keeper
    return 1 if failed[0] else 0
