"""``gridlink run all``: the embedded database (if no GRIDLINK_MONGO_URL) and the five
components as child processes, exactly as they run in production, one per process.

SIGTERM/SIGINT is passed on to every child once (each drains gracefully: the children run
in sessions of their own, so a Ctrl-C at the terminal reaches them only through the
launcher), and the launcher waits for all of them (:func:`services.shutdown.drain`); a
second signal is passed on too (the children then exit at once). A launcher killed
outright takes its children with it (PR_SET_PDEATHSIG). A child that dies (killed, or
exiting with a failure) is started again, as Kubernetes restarts a container: after a
backoff that doubles from 0.5 s up to 10 s (and starts over once the child has run 30 s),
logged with how often that child was restarted; the others keep running meanwhile, so the
local quick start behaves like the cluster. A child that ends cleanly (exit 0) is not
restarted; when every child has ended by itself, so does the launcher.

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
from gridlink.dev_webhooks import development_key
from services.entry import run_loop
from services.settings import Settings, environment_with
from services.shutdown import InFlight, drain, install_signal_handlers

log = logging.getLogger("gridlink.launcher")

PR_SET_PDEATHSIG = 1  # prctl(2)

#: A child to run: its name, command line and environment.
Child = tuple[str, list[str], dict[str, str]]


def run_all(settings: Settings) -> int:
    """Run everything until a signal stops it (a child that dies is restarted); the exit
    code."""
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
    webhooks, webhook_lines = development_key(settings, data)
    children = [
        (component, [sys.executable, "-m", component],
         environment_with(mongo_url=mongo_url, http_port=settings.http_port + offset,
                          instance=f"{settings.instance}-{component}", **webhooks))
        for offset, component in enumerate(components.NAMES, start=1)]
    banner = run_banner(settings) + webhook_lines
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
    api = f"http://127.0.0.1:{settings.api_port}"
    lines = [f"GridLink is starting. Chargers connect to {url}/<chargePointId>",
             f"HTTP API: {api}/api/v1  docs: {api}/docs  "
             "(a key: gridlink api-keys add NAME --scope admin)",
             f"Web console: {api}/console/  (log in with such a key)",
             f"Probes: {probes}/readyz  (Ctrl-C stops)"]
    if settings.allow_security_profile_0:
        lines.append("WARNING: security profile 0 is ON (GRIDLINK_ALLOW_SECURITY_PROFILE_0): "
                     "stations without a password connect unauthenticated. Development only.")
    return tuple(lines)


async def _run(children: list[Child], banner: tuple[str, ...], code: list[int],
               database: EmbeddedDatabase | None) -> None:
    code[0] = await supervise(children, banner=banner, database=database)


async def supervise(children: list[Child], *, banner: tuple[str, ...] = (),
                    database: EmbeddedDatabase | None = None, first_backoff_s: float = 0.5,
                    max_backoff_s: float = 10.0, stable_s: float = 30.0,
                    restarts: dict[str, int] | None = None) -> int:
    """Start the children, print ``banner``, and run until they have all ended (0). A child
    that dies is started again after a backoff (``first_backoff_s``, doubling up to
    ``max_backoff_s``; the first again once it ran ``stable_s``), counted in ``restarts``
    (by name). ``database`` (started already) is restarted whenever it dies, and stopped
    once the children have ended."""
    started: dict[str, asyncio.subprocess.Process] = {}
    stopping = asyncio.Event()
    received = [signal.SIGTERM]  # the signal to pass on
    restarted = restarts if restarts is not None else {}
    loop = asyncio.get_running_loop()

    def forward(signum: int) -> None:
        for child in started.values():
            if child.returncode is None:
                child.send_signal(signum)

    def on_first(signum: int) -> None:
        received[0] = signal.Signals(signum)

    install_signal_handlers(stopping, on_first=on_first, on_second=forward)
    async def spawn(argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
        # Each child in a session of its own: a Ctrl-C (SIGINT to the terminal's process
        # group) reaches only the launcher, which passes it on once; the child still ends
        # with the launcher if that is killed outright.
        return await asyncio.create_subprocess_exec(
            *argv, env=env, start_new_session=True, preexec_fn=_end_with_parent)

    for name, argv, env in children:
        started[name] = await spawn(argv, env)
        restarted.setdefault(name, 0)
    for line in banner:
        print(line, flush=True)
    running = InFlight()

    async def watch(name: str, argv: list[str], env: dict[str, str]) -> None:
        backoff = first_backoff_s
        with running.track():
            while True:
                since = loop.time()
                returncode = await started[name].wait()
                if stopping.is_set() or returncode == 0:
                    break
                if loop.time() - since >= stable_s:
                    backoff = first_backoff_s
                restarted[name] += 1
                log.error("component exited; restarting it",
                          extra={"component_name": name, "code": returncode, "in_s": backoff,
                                 "restarts": restarted[name]})
                try:
                    await asyncio.wait_for(stopping.wait(), backoff)
                    break  # stopping meanwhile: nothing to restart
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, max_backoff_s)
                started[name] = await spawn(argv, env)
                if stopping.is_set():  # the signal came while it was starting
                    started[name].send_signal(received[0])
        if running.count == 0:
            stopping.set()  # every child ended by itself: nothing is left to run

    watchers = [asyncio.create_task(watch(name, argv, env)) for name, argv, env in children]
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
    if any(restarted.values()):
        log.warning("components were restarted", extra={"restarts": dict(restarted)})
    return 0
