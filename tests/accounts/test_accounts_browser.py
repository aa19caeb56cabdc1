"""The account pages in headless Chromium: keyboard-only sign-up, the colour preview, axe-core."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from conftest import LiveNode

# pytest puts only a test module's own folder on sys.path; the shared browser helpers live in
# tests/browser and must be imported under their usual name, so that one Chromium serves all.
sys.path.append(str(Path(__file__).resolve().parents[1] / "browser"))
from browser_support import browser, new_context, run_axe  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def page(
    live_node: LiveNode,
    browser: Browser,  # noqa: F811 - the fixture imported above
) -> AsyncIterator[tuple[Page, list[str]]]:
    errors: list[str] = []
    async with new_context(
        browser, base_url=live_node.url, viewport={"width": 390, "height": 844}
    ) as context:
        p = await context.new_page()

        # CSP violations are reported as console errors: any means a page breaks its own policy.
        def on_console(m: ConsoleMessage) -> None:
            if m.type == "error" and not m.text.startswith("Failed to load resource"):
                errors.append(m.text)  # not 4xx answers or the favicon

        p.on("console", on_console)
        p.on("pageerror", lambda e: errors.append(str(e)))
        yield p, errors


async def _axe(page: Page) -> list[dict[str, Any]]:
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]} for v in await run_axe(page)
    ]


async def test_keyboard_signup_profile_preview_and_accessibility(
    page: tuple[Page, list[str]],
) -> None:
    p, errors = page
    await p.goto("/signup?next=/profile")
    assert await _axe(p) == []
    # Keyboard only: the username field has focus, Tab moves through the form.
    await p.keyboard.type("Wendy_1")
    await p.keyboard.press("Tab")
    await p.keyboard.type("<img src=x onerror=alert(1)>")
    await p.keyboard.press("Tab")
    await p.keyboard.type("correct horse battery")
    await p.keyboard.press("Enter")
    await p.wait_for_url("**/profile")
    nav = p.get_by_role("navigation", name="Main")
    await expect(nav).to_contain_text("<img src=x onerror=alert(1)>")

    colour = p.locator("#colour")
    check = p.locator("#colour-check")
    await expect(check).to_contain_text("readable")
    await colour.fill("#ffee00")
    await expect(check).to_contain_text("too light")
    assert await colour.get_attribute("aria-invalid") == "true"
    await p.get_by_role("button", name="Save profile").click()
    await expect(p.get_by_role("alert")).to_contain_text("contrast")
    assert await _axe(p) == []

    await p.locator("#colour").fill("#3949ab")
    await p.locator("#bio").fill("Plays the oboe.")
    await p.get_by_role("button", name="Save profile").click()
    await expect(p.get_by_role("status")).to_contain_text("Profile saved.")
    preview = p.locator("#colour-preview .preview-name")
    assert await preview.evaluate("e => getComputedStyle(e).color") == "rgb(57, 73, 171)"

    for path in ("/forgot-password", "/reset-password?token=abc"):
        await p.goto(path)
        assert await _axe(p) == [], path
    await p.get_by_role("button", name="Sign out").click()
    await p.wait_for_url("**/")
    await p.goto("/signin")
    assert await _axe(p) == []
    assert errors == []
