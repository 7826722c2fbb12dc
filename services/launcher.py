"""``gridlink run all``: the embedded database (if no GRIDLINK_MONGO_URL) and the four
components as child processes, exactly as they run in production, one per process.

SIGTERM/SIGINT is passed on to every child (each drains gracefully); if one child dies the
others are stopped and the exit code says so.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from services import embedded_db
from services.settings import Settings, environment_with

log = logging.getLogger("gridlink.launcher")
COMPONENTS = ("authz", "transactions", "commands", "gateway")


def run_all(settings: Settings) -> int:
    data = Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    database = None
    mongo_url = settings.mongo_url
    if not mongo_url:
        database = embedded_db.start(settings.embedded_mongo_port, str(data / "db"),
                                     log_file=data / "secantusd.log")
        mongo_url = embedded_db.url(settings.embedded_mongo_port)
        log.info("embedded database", extra={"url": mongo_url, "data": str(data / "db")})
    children: dict[str, subprocess.Popen[bytes]] = {}
    for offset, component in enumerate(COMPONENTS, start=1):
        env = environment_with(mongo_url=mongo_url, http_port=settings.http_port + offset,
                               instance=f"{settings.instance}-{component}")
        children[component] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", component], env=env
        )
    url = settings.public_url or f"ws://127.0.0.1:{settings.gateway_port}/ocpp"
    print(f"GridLink is starting. Chargers connect to {url}/<chargePointId>", flush=True)
    print(f"Probes: http://127.0.0.1:{settings.gateway_port}/readyz  (Ctrl-C stops)", flush=True)

    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while any(child.poll() is None for child in children.values()):
        for name, child in children.items():
            if child.poll() not in (None, 0) and not stopping:
                log.error("component exited; stopping the others",
                          extra={"component_name": name, "code": child.returncode})
                code = 1
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    if database is not None:
        database.terminate()
        database.wait(10)
    return code
