"""Review: following a link to Junto from another site keeps the CSRF token of open tabs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import async_playwright

from conftest import LiveNode

CHROMIUM = "/usr/bin/chromium"


async def test_a_link_from_another_site_keeps_other_tabs_forms_working(
    live_node: LiveNode,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = await browser.new_context()
            first = await context.new_page()
            await first.goto(live_node.url + "/signin")
            token = await first.get_attribute('meta[name="csrf-token"]', "content")
            assert token

            # A link to the lobby posted on another site (a data: page is a site of its own).
            second = await context.new_page()
            page = f'<a id="go" href="{live_node.url}/">Join the conversation</a>'
            await second.goto("data:text/html," + quote(page))
            async with second.expect_navigation():
                await second.click("#go")

            cookies = {c["name"]: c["value"] for c in await context.cookies(live_node.url)}
            assert cookies["junto_csrf"] == token, "the other tab's forms would now be refused"
            # And the first tab's sign-in form still gets past the CSRF check (401, not 403).
            await first.fill("#username", "nobody_here")
            await first.fill("#password", "not the password")
            async with first.expect_navigation():
                await first.click("main form button[type=submit]")
            assert "expired" not in (await first.content()).lower()
        finally:
            await browser.close()
