"""Review: following a link to Junto from another site keeps the CSRF token of open tabs."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from browser_support import browser, new_context  # noqa: F401 - fixture
from playwright.async_api import Browser

from conftest import LiveNode

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_a_link_from_another_site_keeps_other_tabs_forms_working(
    live_node: LiveNode,
    browser: Browser,  # noqa: F811 - the fixture imported above
) -> None:
    async with new_context(browser) as context:
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
