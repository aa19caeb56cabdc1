"""The lobby and the conversation form in real Chromium: live updates, local times, no script
running from titles."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from websockets.asyncio.client import connect

from conftest import LiveNode
from helpers import csrf_headers, need_file, signup

# pytest puts only a test module's own folder on sys.path; the shared browser helpers live in
# tests/browser and must be imported under their usual name, so that one Chromium serves all.
sys.path.append(str(Path(__file__).resolve().parents[1] / "browser"))
from browser_support import AXE_JS, browser, run_axe  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TIMEOUT = 10_000
HOSTILE = "<img src=x onerror=alert(1)>Talk"


@pytest_asyncio.fixture(loop_scope="session")
async def chromium(browser: Browser) -> AsyncIterator[Browser]:  # noqa: F811 - imported above
    """The session's Chromium. The tests close their contexts; this closes any a failing test
    left open, since the browser outlives the test."""
    before = set(browser.contexts)
    yield browser
    for context in browser.contexts:
        if context not in before:
            await context.close()


async def call(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    response = await http.request(method, path, json=body, headers=await csrf_headers(http))
    assert response.status_code in (200, 201), response.text
    return response.json()


async def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(msg: ConsoleMessage) -> None:
        where = str(msg.location.get("url", ""))
        expected = (
            where.endswith("/favicon.ico")  # browsers ask for it by themselves
            or where == page.url  # the page itself answered 4xx on purpose (a form with errors)
            or "WebSocket" in msg.text  # refused while the node restarts; the page retries
        )
        if msg.type == "error" and not expected:
            errors.append(f"{msg.text} ({where})")

    page.on("console", on_console)
    page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    return errors


async def test_lobby_updates_live_and_reconnects(live_node: LiveNode, chromium: Browser) -> None:
    context = await chromium.new_context(
        base_url=live_node.url, timezone_id="Asia/Tokyo", locale="en-GB"
    )
    page = await context.new_page()
    errors = await watch_errors(page)
    async with httpx.AsyncClient(base_url=live_node.url, timeout=10) as host:
        await signup(host, "ana")
        when = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=3)
        upcoming = (
            await call(host, "POST", "/api/conversations",
                       {"title": "Planned", "scheduled_at": when.isoformat(), "tags": ["later"]})
        )["slug"]  # fmt: skip

        await page.goto("/")
        card = page.locator(f'#upcoming-list [data-slug="{upcoming}"]')
        await expect(card).to_be_visible()
        # Shown in the reader's time zone (Tokyo is UTC+9, no daylight saving).
        tokyo = when + timedelta(hours=9)
        time_text = await card.locator("time").inner_text()
        assert "UTC" not in time_text and f"{tokyo:%H}:{tokyo:%M}" in time_text
        await expect(page.locator("#live-empty")).to_be_visible()

        # Created and started elsewhere: it appears among the live ones without a reload.
        live = (await call(host, "POST", "/api/conversations", {"title": HOSTILE}))["slug"]
        await call(host, "POST", f"/api/conversations/{live}/start")
        live_card = page.locator(f'#live-list [data-slug="{live}"]')
        await expect(live_card).to_be_visible(timeout=TIMEOUT)
        await expect(live_card.locator("h3 a")).to_have_text(HOSTILE)
        await expect(live_card.locator(".badge.live")).to_have_text("LIVE")
        await expect(page.locator("#live-empty")).to_be_hidden()

        # Someone entering the room raises the count.
        async with connect(f"{live_node.ws_url}/ws/conversations/{live}") as ws:
            await ws.send(json.dumps({"type": "hello", "protocol": 1, "resume_from": None}))
            await expect(live_card.locator('[data-count="present"]')).to_have_text(
                "1", timeout=TIMEOUT
            )
        await expect(live_card.locator('[data-count="present"]')).to_have_text("0", timeout=TIMEOUT)

        # The scheduled one goes live: it moves from upcoming to live.
        await call(host, "POST", f"/api/conversations/{upcoming}/start")
        await expect(page.locator(f'#live-list [data-slug="{upcoming}"]')).to_be_visible(
            timeout=TIMEOUT
        )
        await expect(card).to_have_count(0)
        await expect(page.locator("#upcoming-empty")).to_be_visible()

        # Ending removes it from the live list.
        await call(host, "POST", f"/api/conversations/{live}/end")
        await expect(live_card).to_have_count(0, timeout=TIMEOUT)

    # The node restarts: the page reconnects by itself and catches up.
    live_node.restart()
    async with httpx.AsyncClient(base_url=live_node.url, timeout=10) as host:
        await signup(host, "bob")
        after = (await call(host, "POST", "/api/conversations", {"title": "After restart"}))["slug"]
        await call(host, "POST", f"/api/conversations/{after}/start")
        await expect(page.locator(f'#live-list [data-slug="{after}"]')).to_be_visible(
            timeout=20_000
        )
    assert not errors, errors
    await context.close()


async def test_form_sends_the_local_time_as_utc(live_node: LiveNode, chromium: Browser) -> None:
    context = await chromium.new_context(base_url=live_node.url, timezone_id="America/Sao_Paulo")
    page = await context.new_page()
    errors = await watch_errors(page)
    await page.goto("/signup")
    async with httpx.AsyncClient(base_url=live_node.url) as http:
        await signup(http, "cleo")
        await context.add_cookies(
            [{"name": k, "value": v, "url": live_node.url} for k, v in http.cookies.items()]
        )
    await page.goto("/conversations/new")
    await expect(page.locator("#scheduled_at-hint")).to_contain_text("America/Sao_Paulo")
    await page.fill("#title", "Evening talk")
    await page.fill("#tags", "brazil, Evening")
    # São Paulo is UTC-3 all year (no daylight saving since 2019).
    local = (datetime.now(UTC) + timedelta(days=10)).replace(hour=20, minute=30)
    await page.fill("#scheduled_at", local.strftime("%Y-%m-%dT%H:%M"))
    await page.click("form.conv-form button[type=submit]")
    await page.wait_for_url("**/edit?created=1", timeout=TIMEOUT)
    slug = page.url.split("/c/")[1].split("/")[0]
    got = await (await page.request.get(f"/api/conversations/{slug}")).json()
    stored = datetime.fromisoformat(got["scheduled_at"])
    assert (stored.hour, stored.minute) == (23, 30)
    assert got["tags"] == ["brazil", "evening"]
    # The edit form shows it back in local time.
    await expect(page.locator("#scheduled_at")).to_have_value(local.strftime("%Y-%m-%dT20:30"))
    assert not errors, errors
    await context.close()


async def serious_violations(page: Page) -> list[str]:
    return [
        f"{v['id']}: {v['help']} at {[n.get('target') for n in v['nodes']][:3]}"
        for v in await run_axe(page)
    ]


async def test_pages_are_accessible_on_a_phone(live_node: LiveNode, chromium: Browser) -> None:
    need_file(AXE_JS, "axe-core: run npm ci")
    context = await chromium.new_context(
        base_url=live_node.url, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    page = await context.new_page()
    errors = await watch_errors(page)
    await page.goto("/")
    await expect(page.get_by_text("The lobby is empty")).to_be_visible()
    checked = {"empty lobby": await serious_violations(page)}

    async with httpx.AsyncClient(base_url=live_node.url, timeout=10) as host:
        await signup(host, "dan")
        slug = (
            await call(host, "POST", "/api/conversations",
                       {"title": "A rather long title that has to wrap on a small screen",
                        "tags": ["phones", "a11y"], "visibility": "invite_only"})
        )["slug"]  # fmt: skip
        await call(host, "PATCH", f"/api/conversations/{slug}", {"visibility": "public"})
        live = (await call(host, "POST", "/api/conversations", {"title": "On air"}))["slug"]
        await call(host, "POST", f"/api/conversations/{live}/start")
        token = (await call(host, "POST", f"/api/conversations/{slug}/invites", {}))["token"]
        await context.add_cookies(
            [{"name": k, "value": v, "url": live_node.url} for k, v in host.cookies.items()]
        )
        await page.goto("/")
        checked["lobby"] = await serious_violations(page)
        await page.goto("/conversations/new")
        await page.fill("#title", "")
        await page.fill("#tags", "fine, not fine!")
        await page.click("form.conv-form button[type=submit]")
        await expect(page.locator("#form-errors")).to_be_visible()
        await expect(page.locator("#tags-error")).to_contain_text("tag 2")
        checked["form with errors"] = await serious_violations(page)
        await page.goto(f"/c/{slug}/edit")
        checked["edit page"] = await serious_violations(page)
        # Nothing may be wider than the screen.
        overflow = await page.evaluate("document.documentElement.scrollWidth > innerWidth")
        assert not overflow, "the edit page scrolls sideways on a phone"

    await context.clear_cookies()
    await page.goto(f"/invite/{token}")
    await expect(page.get_by_label("Your name")).to_be_visible()
    checked["invite page"] = await serious_violations(page)
    await page.goto("/invite/not-a-token")
    checked["broken invite"] = await serious_violations(page)

    assert not {k: v for k, v in checked.items() if v}, checked
    assert not errors, errors
    await context.close()
