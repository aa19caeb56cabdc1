"""The account pages in headless Chromium: keyboard-only sign-up, the colour preview, axe-core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from conftest import LiveNode

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def page(live_node: LiveNode) -> AsyncIterator[tuple[Page, list[str]]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(
            base_url=live_node.url, viewport={"width": 390, "height": 844}
        )
        p = await context.new_page()
        # CSP violations are reported as console errors: any means a page breaks its own policy.
        p.on(
            "console",
            lambda m: (
                m.type == "error"
                and not m.text.startswith("Failed to load resource")  # 4xx answers, favicon
                and errors.append(m.text)
            ),
        )
        p.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield p, errors
        finally:
            await browser.close()


async def _axe(page: Page) -> list[dict[str, Any]]:
    await page.evaluate(AXE_JS.read_text() + "\n;undefined")
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
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
