"""The web console's browser: Debian's chromium (/usr/bin/chromium) driven by Playwright.

Playwright never downloads a browser here: `make test-tools` installs Debian's chromium and
the fixture launches that executable. One browser for the session, a fresh context (no
sessionStorage, no cookies) per test. Every page's uncaught script errors and CSP refusals
are collected and fail the test that caused them.

``console`` is the session's API process (the ``api`` fixture of tests/conftest.py) with a
``commands`` key and a ``read`` key; ``charger`` is GridLink's simulator running one idle,
registered charger with an Accepted id tag, for the module.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from services import stations
from tests.helpers import ApiServer, add_station, fresh_tag, new_id
from tests.processes import Stack, wait_for

CHROMIUM = Path(os.environ.get("GRIDLINK_TEST_CHROMIUM", "/usr/bin/chromium"))

#: Polling pages refresh every 3 s and a command waits for a charger: give expect() room.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test-tools` installs Debian's chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium),
                                                    headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a context of its own; fails the test on an uncaught error or a CSP refusal."""
    context = await browser.new_context()
    context.set_default_timeout(20_000)
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(f"CSP: {message.text}")

    opened.on("console", console)
    yield opened
    await context.close()
    assert problems == [], problems


@dataclass(frozen=True)
class Console:
    """The API process serving the console, and keys to log in with."""

    base: str  # http://127.0.0.1:<port>
    key: str  # scopes read + commands
    read_key: str  # scope read only

    @property
    def url(self) -> str:
        return f"{self.base}/console/"


@pytest.fixture(scope="session")
def console(api: ApiServer) -> Console:
    """The console of the session's API process; keys made as `gridlink api-keys add` does."""
    return Console(api.base_url, key=api.keys["commands"], read_key=api.keys["read"])


@dataclass
class SimulatedCharger:
    """GridLink's simulator (``python -m simulator``, as ``gridlink simulate``) running one
    idle charger, registered and connected; ``tag`` is an Accepted id tag for it."""

    id: str
    tag: str
    stack: Stack
    process: asyncio.subprocess.Process

    async def last_boot(self) -> Any:
        found = await self.stack.db()[stations.COLLECTION].find_one({"_id": self.id})
        return None if found is None else found.get("last_boot")

    async def booted_after(self, before: Any) -> None:
        """Until the charger has booted again (after a Reset it reconnects and boots)."""
        async def booted() -> bool:
            return await self.last_boot() not in (None, before)
        await wait_for(booted, timeout=30, what=f"{self.id} to boot again")


@pytest.fixture(scope="module")
async def charger(stack: Stack) -> AsyncIterator[SimulatedCharger]:
    prefix = new_id("SIM")
    station = f"{prefix}1"  # the simulator numbers its chargers from 1
    await add_station(stack, station)
    tag = await fresh_tag(stack, "CON")
    log = stack.logs / f"simulator-{station}.log"
    output = log.open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "--url", stack.gateway_url, "--chargers", "1",
        "--profile", "idle", "--ramp", "0", "--duration", "600", "--id-prefix", prefix,
        "--id-tag", tag, env=stack.env(), stdout=output,
        stderr=asyncio.subprocess.STDOUT)
    simulated = SimulatedCharger(station, tag, stack, process)
    try:
        try:
            await simulated.booted_after(None)
        except AssertionError as error:
            raise AssertionError(f"{error}; the simulator said:\n{log.read_text()}") from None
        yield simulated
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        output.close()
