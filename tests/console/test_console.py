"""The web console in a real browser (Debian's chromium, Playwright) against the real stack:
the API process, RabbitMQ, SecantusDB, the four services and GridLink's simulated charger.

Every wait is on page state (Playwright's auto-waiting locators and ``expect``); pages poll
the API every 3 s, so an expectation holds once the stack has done what was asked.
"""

from __future__ import annotations

import re

import aiohttp
import pytest
from playwright.async_api import Browser, Locator, Page, expect
from yarl import URL

from api import keys
from services import id_tags, stations
from services.ocpp16 import utcnow
from tests.charger import Charger
from tests.console.conftest import Console, SimulatedCharger
from tests.helpers import add_station, add_tag, new_id, start_transaction, stop_transaction
from tests.processes import Stack

pytestmark = pytest.mark.integration

#: Markup a charger or an old registry could put in a station id; never turned into HTML.
MARKUP_ID = '<img src=x onerror="window.__xss=1">'


async def log_in(page: Page, console: Console, key: str) -> None:
    await page.goto(console.url)
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Stations")).to_be_visible()


async def station_row(page: Page, station: str) -> Locator:
    """The row of ``station`` on the Stations page, paging on (the session's stack holds the
    stations of every test, listed by id) until a page shows it."""
    link = page.get_by_role("link", name=station, exact=True)
    first = page.get_by_role("row").nth(1).get_by_role("link")
    for _ in range(100):
        await expect(first).to_be_visible()  # a page of the list is shown
        if await link.count():
            return page.get_by_role("row").filter(has=link)
        following = page.get_by_role("button", name="Next page")
        assert await following.is_visible(), f"{station} is on no page of the station list"
        shown = await first.text_content() or ""
        await following.click()
        await expect(first).not_to_have_text(shown)
    raise AssertionError(f"{station} is not on the first 100 pages of the station list")


def outcomes(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("status", name="Command outcomes")


async def test_a_wrong_key_is_refused_with_the_apis_reason(page: Page, console: Console
                                                          ) -> None:
    await page.goto(console.url)
    await page.get_by_label("API key").fill("glk_not-a-key-this-api-ever-issued")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Login failed (401)")
    await expect(page.get_by_role("navigation")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_the_simulated_charger_is_listed_connected_and_logout_forgets_the_key(
        page: Page, console: Console, charger: SimulatedCharger, stack: Stack) -> None:
    offline = f"OFF{charger.id}"
    await add_station(stack, offline)
    await log_in(page, console, console.key)
    assert console.key not in page.url
    row = await station_row(page, charger.id)
    await expect(row).to_contain_text("connected")
    await expect(row).to_contain_text("Accepted")
    await expect(row).to_contain_text("1: Available")
    await page.get_by_role("link", name="Commands").click()  # and back: the first page again
    await page.get_by_role("link", name="Stations").click()
    other = await station_row(page, offline)
    await expect(other).to_contain_text("offline")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    await page.goto(f"{console.url}#/stations")  # nothing shown without a key
    await expect(page.get_by_label("API key")).to_be_visible()


async def test_a_key_revoked_meanwhile_logs_the_console_out(page: Page, console: Console,
                                                            stack: Stack) -> None:
    key_id, key = await keys.create_key(stack.db(), "console-revoked", ["read"])
    await log_in(page, console, key)
    await keys.revoke(stack.db(), key_id)  # as `gridlink api-keys revoke` does
    await expect(page.get_by_role("alert")).to_contain_text("Your API key was refused")
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_remote_start_and_stop_a_charge_from_the_browser(
        page: Page, console: Console, charger: SimulatedCharger, stack: Stack) -> None:
    await log_in(page, console, console.key)
    await page.get_by_label("Station id").fill(charger.id)
    await page.get_by_role("button", name="Open").click()
    await expect(page.get_by_role("heading", name=f"Station {charger.id}")).to_be_visible()

    await page.get_by_label("Id tag").fill(charger.tag)
    await page.get_by_role("button", name="Remote start").click()
    await expect(outcomes(page)).to_contain_text(
        f"Remote start on {charger.id}: accepted — charger answered Accepted")
    stop = page.get_by_role("button", name=re.compile(r"^Remote stop \d+$"))
    await expect(stop).to_be_visible()  # the charger started it: an active transaction
    transaction_id = int((await stop.text_content() or "").rsplit(" ", 1)[1])
    stored = await stack.db()["transactions"].find_one({"_id": transaction_id})
    assert stored is not None and stored["id_tag"] == charger.tag, stored

    await page.get_by_role("link", name="Transactions").click()
    await page.get_by_label("Station").fill(charger.id)  # the session's stack has others
    await page.get_by_label("Station").press("Enter")
    live = page.get_by_role("row").filter(has_text=charger.tag)
    await expect(live).to_contain_text(charger.id)
    await live.get_by_role("button", name=f"Remote stop {transaction_id}").click()
    await expect(outcomes(page)).to_contain_text(
        f"Remote stop {transaction_id} on {charger.id}: accepted — charger answered Accepted")
    await expect(live).to_have_count(0)  # no longer live

    await page.get_by_label("Show").select_option(label="Completed")
    done = page.get_by_role("row").filter(has_text=charger.tag)
    await expect(done).to_contain_text(str(transaction_id))
    await expect(done.get_by_role("button")).to_have_count(0)
    stopped = await stack.db()["transactions"].find_one({"_id": transaction_id})
    assert stopped is not None and stopped["stop"]["reason"] == "Remote", stopped


async def test_outcomes_and_refusals_are_shown(page: Page, console: Console,
                                               charger: SimulatedCharger) -> None:
    await page.goto(f"{console.url}#/stations/{charger.id}")  # asked for before logging in
    await page.get_by_label("API key").fill(console.key)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name=f"Station {charger.id}")).to_be_visible()
    unlock = page.get_by_role("form", name="Unlock connector")
    await unlock.get_by_label("Connector").fill("9")  # the charger has one connector
    await unlock.get_by_role("button", name="Unlock connector").click()
    await expect(outcomes(page)).to_contain_text(
        f"Unlock connector on {charger.id}: rejected — charger answered NotSupported")

    configuration = page.get_by_role("region", name="Configuration")
    await expect(configuration).to_contain_text("No configuration snapshot yet")
    await configuration.get_by_role("button", name="Get configuration").click()
    await expect(outcomes(page)).to_contain_text(
        f"Get configuration on {charger.id}: accepted — ")  # "— N configuration keys"
    heartbeat = configuration.get_by_role("row").filter(has_text="HeartbeatInterval")
    await expect(heartbeat).to_be_visible()  # the snapshot GridLink kept of the answer

    await page.get_by_label("Id tag").fill("")  # nothing sent: the form says what it lacks
    await page.get_by_role("button", name="Remote start").click()
    await expect(outcomes(page)).to_contain_text(
        f"Remote start on {charger.id}: enter an id tag first")
    await page.get_by_label("Id tag").fill("T" * 21)  # 1.6: idTag is at most 20 characters
    await page.get_by_role("button", name="Remote start").click()
    refusal = outcomes(page).get_by_text(f"Remote start on {charger.id}: refused (422)")
    await expect(refusal).to_contain_text("idTag")  # the problem's detail names the field

    await page.get_by_role("link", name="Commands").click()
    await page.get_by_label("Station").fill(charger.id)
    await page.get_by_label("Station").press("Enter")
    row = page.get_by_role("row").filter(has_text="UnlockConnector").filter(
        has_text='"connectorId":9')
    await expect(row).to_contain_text("rejected")


async def test_a_command_to_an_offline_station_says_so(page: Page, console: Console,
                                                      stack: Stack) -> None:
    station = new_id("OFF")
    await add_station(stack, station)
    await log_in(page, console, console.key)
    await page.goto(f"{console.url}#/stations/{station}")
    await expect(page.locator(".summary")).to_contain_text("offline")
    await page.get_by_role("button", name="Hard reset").click()
    line = outcomes(page).get_by_text(f"Hard reset on {station}: offline — ")
    await expect(line).to_be_visible()  # with GridLink's reason after the dash
    history = page.get_by_role("region", name="Command history")
    await expect(history.get_by_role("row").filter(has_text="Reset")).to_contain_text("offline")


async def test_a_key_without_the_commands_scope_sees_the_403(
        page: Page, console: Console, charger: SimulatedCharger) -> None:
    await log_in(page, console, console.read_key)
    await page.goto(f"{console.url}#/stations/{charger.id}")
    await page.get_by_label("Message", exact=True).select_option("Heartbeat")
    await page.get_by_role("button", name="Trigger message").click()
    await expect(outcomes(page)).to_contain_text(
        f"Trigger Heartbeat on {charger.id}: refused (403)")


async def test_a_reset_shows_the_chargers_answer(page: Page, console: Console,
                                                 charger: SimulatedCharger) -> None:
    await log_in(page, console, console.key)
    await page.goto(f"{console.url}#/stations/{charger.id}")
    booted = await charger.last_boot()
    await page.get_by_role("button", name="Soft reset").click()
    await expect(outcomes(page)).to_contain_text(
        f"Soft reset on {charger.id}: accepted — charger answered Accepted")
    history = page.get_by_role("region", name="Command history")
    await expect(history.get_by_role("row").filter(has_text="Reset").first).to_contain_text(
        "accepted")
    await charger.booted_after(booted)  # it rebooted, as a Reset asks
    await expect(page.locator(".summary")).to_contain_text("connected")


async def test_a_station_id_holding_markup_is_shown_as_text(
        page: Page, console: Console, stack: Stack) -> None:
    # The registry refuses such an id (services/station_ids.py); written past it, as an old
    # database or a direct write could, the console must still show it as text.
    await stack.db()[stations.COLLECTION].update_one(
        {"_id": MARKUP_ID}, stations.station_update(registration="Accepted",
                                                    password_hash=None, now=utcnow()),
        upsert=True)
    try:
        await log_in(page, console, console.key)
        await expect(await station_row(page, MARKUP_ID)).to_be_visible()
        await page.get_by_role("link", name=MARKUP_ID, exact=True).click()
        await expect(page.get_by_role("heading", name=f"Station {MARKUP_ID}")).to_be_visible()
        await expect(page.get_by_role("region", name="Connectors")).to_contain_text(
            "No status reported yet.")
        assert await page.locator("img").count() == 0
        assert await page.evaluate("window.__xss") is None
    finally:  # other tests of the session list stations too: leave them a registry they know
        await stack.db()[stations.COLLECTION].delete_one({"_id": MARKUP_ID})


async def test_an_id_tag_holding_markup_from_a_charger_is_shown_as_text(
        page: Page, console: Console, stack: Stack) -> None:
    station, tag = new_id("MK"), "<svg onload=xss()>"  # a CiString20: any printable ASCII
    await add_station(stack, station)
    await add_tag(stack, tag)
    try:
        async with Charger.connect(stack.gateway_url, station) as charger:
            await charger.boot()
            transaction_id = await start_transaction(charger, tag)
            await log_in(page, console, console.key)
            await page.get_by_role("link", name="Transactions").click()
            await page.get_by_label("Station").fill(station)
            await page.get_by_label("Station").press("Enter")
            row = page.get_by_role("row").filter(has_text=station)
            await expect(row.get_by_role("cell", name=tag, exact=True)).to_be_visible()
            await page.get_by_role("link", name=station, exact=True).click()
            active = page.get_by_role("region", name="Active transactions")
            await expect(active.get_by_role("cell", name=tag, exact=True)).to_be_visible()
            assert await page.locator("svg").count() == 0  # and no onload ran: no page error
            await stop_transaction(charger, transaction_id)
    finally:  # the local authorization list is derived from all tags: take it back out
        await stack.db()[id_tags.COLLECTION].delete_one({"_id": tag})


async def test_console_responses_carry_the_security_headers(console: Console) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(console.base + "/console", allow_redirects=False) as moved:
            assert moved.status == 308
            assert moved.headers["Location"] == "/console/"
        for path, kind in (("/console/", "text/html"), ("/console/js/app.js", "javascript"),
                           ("/console/console.css", "text/css")):
            async with session.get(console.base + path) as response:
                assert response.status == 200, path
                assert kind in response.headers["Content-Type"], path
                policy = response.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        # api/console/static/../../../pyproject.toml is the repository's: never served
        for escape in ("/console/..%2f..%2f..%2fpyproject.toml",
                       "/console/%2e%2e/%2e%2e/%2e%2e/pyproject.toml"):
            async with session.get(URL(console.base + escape, encoded=True)) as outside:
                assert outside.status == 404, escape
        async with session.get(console.base + "/openapi.json") as spec:
            assert not [path for path in (await spec.json())["paths"] if "console" in path]


async def test_the_browser_enforces_the_policy(browser: Browser, console: Console) -> None:
    """Were markup ever to reach the page, its inline script would not run."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(console.url)
        await expect(page.get_by_label("API key")).to_be_visible()
        async with page.expect_console_message(
                lambda message: "Content Security Policy" in message.text) as refusal:
            await page.evaluate("""() => {
                const script = document.createElement("script");
                script.textContent = "window.__inline = 1";
                document.body.append(script);
            }""")
        assert "script-src" in (await refusal.value).text
        assert await page.evaluate("window.__inline") is None
    finally:
        await context.close()
