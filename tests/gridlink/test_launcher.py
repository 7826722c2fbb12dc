"""``gridlink run all``'s supervision, with small child processes standing in for the
components: a signal reaches every child once, a dying child is restarted (with backoff,
logged and counted) while the others keep running, and the launcher ends when its children
have."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

#: A child that records each signal it gets in its file and exits 0 on the first; it prints
#: "listening" once its handlers are in place (its output is the launcher's).
CHILD = """
import pathlib, signal, sys, time
log = pathlib.Path(sys.argv[1])
def on(signum, frame):
    with log.open("a") as f:
        f.write(f"{signum}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on)
signal.signal(signal.SIGINT, on)
log.write_text("")
print("listening", flush=True)
time.sleep(float(sys.argv[2]))
sys.exit(int(sys.argv[3]))
"""

#: The launcher prints "started" once its own handlers are in place and its children run.
LAUNCHER = """
import asyncio, json, sys
from gridlink.launcher import supervise
from services import logs
logs.configure("launcher", "INFO")
children = [(name, argv, {}) for name, argv in json.loads(sys.argv[1])]
sys.exit(asyncio.run(supervise(children, banner=("started",))))
"""


def child(name: str, log: Path, seconds: float, code: int = 0) -> tuple[str, list[str]]:
    return name, [sys.executable, "-c", CHILD, str(log), str(seconds), str(code)]


async def launch(children: list[tuple[str, list[str]]], *, session: bool = False
                 ) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAUNCHER, json.dumps(children),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=session)


async def listening(process: asyncio.subprocess.Process, children: int) -> None:
    """The launcher and each child have their signal handlers in place."""
    expected = ["listening"] * children + ["started"]
    seen: list[str] = []
    assert process.stdout is not None
    while sorted(seen) != sorted(expected):
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, f"the launcher ended early: {seen}"
        seen.append(line.decode().strip())


async def test_the_launcher_ends_when_its_children_end(tmp_path: Path) -> None:
    process = await launch([child("a", tmp_path / "a", 0), child("b", tmp_path / "b", 0.2)])
    assert await asyncio.wait_for(process.wait(), 30) == 0


#: A child that notes each of its starts in its file and exits 3 at once (a crash loop).
CRASHING = """
import pathlib, sys
with pathlib.Path(sys.argv[1]).open("a") as f:
    f.write("started\\n")
sys.exit(3)
"""


async def test_a_dying_child_is_restarted_with_backoff_and_the_others_keep_running(
        tmp_path: Path) -> None:
    sleeper, crashing = tmp_path / "sleeper", tmp_path / "crashing"
    process = await launch([child("sleeper", sleeper, 60),
                            ("crashing", [sys.executable, "-c", CRASHING, str(crashing)])])
    assert process.stderr is not None
    try:
        logged = []
        while len(logged) < 3:  # three restarts, each logged with its count
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            assert line, "the launcher ended"
            if "restarting it" in line:
                logged.append(line)
        records = [json.loads(line) for line in logged]
        assert [(r["component_name"], r["code"], r["restarts"], r["in_s"])
                for r in records] == [
            ("crashing", 3, 1, 0.5), ("crashing", 3, 2, 1.0), ("crashing", 3, 3, 2.0)]
        assert crashing.read_text().split().count("started") >= 3  # restarted, not given up
        assert not sleeper.exists() or sleeper.read_text() == ""  # untouched meanwhile
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:  # a failure above: leave no launcher behind
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
    assert sleeper.read_text().split() == [str(int(signal.SIGTERM))]  # stopped, once


async def test_a_signal_reaches_every_child_once(tmp_path: Path) -> None:
    logs = [tmp_path / "one", tmp_path / "two"]
    process = await launch([child(log.name, log, 60) for log in logs])
    await listening(process, len(logs))
    process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert [log.read_text().split() for log in logs] == [[str(int(signal.SIGINT))]] * 2


def test_the_banner_names_the_charger_url_the_api_and_warns_of_profile_0(tmp_path: Path) -> None:
    from gridlink.launcher import run_banner
    from services.settings import Settings

    plain = run_banner(Settings(gateway_port=9000, api_port=8088))
    assert plain[0].endswith("ws://127.0.0.1:9000/ocpp/<chargePointId>")
    assert plain[1].startswith("HTTP API: http://127.0.0.1:8088/api/v1")
    assert "Web console: http://127.0.0.1:8088/console/  (log in with such a key)" in plain
    assert not any("profile 0" in line for line in plain)
    (tmp_path / "c.pem").write_text("x")
    secure = run_banner(Settings(gateway_port=8443, tls_cert_file=str(tmp_path / "c.pem"),
                                 tls_key_file=str(tmp_path / "c.pem"),
                                 allow_security_profile_0=True))
    assert "wss://127.0.0.1:8443/ocpp/<chargePointId>" in secure[0]
    assert any(line.startswith("WARNING: security profile 0 is ON") for line in secure)


async def test_a_ctrl_c_at_the_terminal_reaches_every_child_once(tmp_path: Path) -> None:
    import os

    logs = [tmp_path / "one", tmp_path / "two"]
    process = await launch([child(log.name, log, 60) for log in logs], session=True)
    await listening(process, len(logs))
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole process group
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert [log.read_text().split() for log in logs] == [[str(int(signal.SIGINT))]] * 2


async def test_children_end_when_the_launcher_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "orphan"
    process = await launch([child("orphan", log, 60)])
    await listening(process, 1)
    process.kill()
    await process.wait()

    def ended() -> bool:
        return log.read_text().split() == [str(int(signal.SIGTERM))]

    from tests.processes import wait_for

    await wait_for(ended, timeout=10, what="the child ended with its launcher")
