"""Accessibility (axe-core) on every kind of page, and the room on a phone-sized screen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from browser_support import (  # noqa: F401 - fixtures
    Person,
    api,
    browser,
    describe_violations,
    node,
    open_person,
    run_axe,
    screenshot,
    sign_up,
)
from playwright.async_api import Browser, Page, expect

from conftest import LiveNode

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TIMEOUT = 10_000


@dataclass
class Scene:
    slug: str
    host: Person


async def send(page: Page, selector: str, text: str) -> None:
    box = page.locator(selector)
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("", timeout=TIMEOUT)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scene(browser: Browser, node: LiveNode) -> AsyncIterator[Scene]:  # noqa: F811
    """A live room with a little of everything in it, seen by its host."""
    host = await open_person(browser, node, "host")
    await sign_up(host, "Ada Host")
    status, body = await api(
        host.page,
        "POST",
        "/api/conversations",
        {
            "title": "Cities for people, not cars",
            "description": "How do we make streets livable again?",
            "tags": ["cities", "transport"],
        },
    )
    assert status == 201, body
    slug = body["slug"]
    await host.page.goto(f"/c/{slug}")
    await expect(host.page.locator("#conn-status")).to_have_attribute(
        "data-status", "open", timeout=TIMEOUT
    )
    # The host starts it from the room's host controls.
    await expect(host.page.locator("#room-state")).to_have_text("Scheduled")
    await host.page.get_by_role("button", name="Start the conversation").click()
    await expect(host.page.locator("#room-state")).to_have_text("Live", timeout=TIMEOUT)
    await expect(host.page.get_by_role("button", name="End the conversation")).to_be_visible()
    await send(host.page, "#chat-input", "Welcome! We start with a question: who owns the street?")
    await send(
        host.page, "#bc-input", "Paris removed 50,000 parking spaces #cities https://example.org"
    )
    yield Scene(slug, host)
    host.assert_no_script_errors()
    await host.context.close()


async def assert_accessible(page: Page, what: str) -> None:
    violations = await run_axe(page)
    assert not violations, f"axe on {what}:\n{describe_violations(violations)}"


async def test_pages_have_no_serious_accessibility_violations(
    scene: Scene,
    browser: Browser,  # noqa: F811
    node: LiveNode,  # noqa: F811
) -> None:
    host_page = scene.host.page
    await assert_accessible(host_page, "the room (host)")
    for path in ("/profile", "/conversations/new", f"/c/{scene.slug}/edit", "/"):
        response = await host_page.goto(path)
        assert response is not None and response.status == 200, path
        await assert_accessible(host_page, f"{path} (signed in)")

    visitor = await open_person(browser, node, "visitor")
    try:
        for path in ("/", "/signin", "/signup", f"/c/{scene.slug}"):
            response = await visitor.page.goto(path)
            assert response is not None and response.status == 200, path
            if path.startswith("/c/"):
                await expect(visitor.page.locator(".chat-list .msg")).to_have_count(
                    1, timeout=TIMEOUT
                )
            await assert_accessible(visitor.page, f"{path} (anonymous)")
        visitor.assert_no_script_errors()
    finally:
        await visitor.context.close()


async def no_horizontal_scroll(page: Page) -> None:
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], (
        f"page scrolls sideways: {widths[0]} px content in {widths[1]} px"
    )


async def test_room_on_a_phone(scene: Scene, browser: Browser, node: LiveNode) -> None:  # noqa: F811
    phone = await open_person(browser, node, "phone", viewport={"width": 375, "height": 812})
    page = phone.page
    try:
        await page.goto(f"/c/{scene.slug}")
        await expect(page.locator("#conn-status")).to_have_attribute(
            "data-status", "open", timeout=TIMEOUT
        )
        await no_horizontal_scroll(page)
        await page.get_by_label("Your display name").fill("Pat on a phone")
        await page.get_by_role("button", name="Join as guest").click()
        await expect(page.locator(".join-bar")).to_be_hidden(timeout=TIMEOUT)

        # Sections are tabs here; each one fits the width and its input can be used.
        tabs = page.get_by_role("tablist", name="Room sections")
        await expect(tabs).to_be_visible()
        await tabs.get_by_role("tab", name="Chat").click()
        await expect(page.locator("#chat-input")).to_be_visible()
        await expect(page.locator("#panel-stage")).to_be_hidden()
        await send(page, "#chat-input", "Typed on a phone")
        await expect(page.locator(".chat-list .msg", has_text="Typed on a phone")).to_be_visible()
        await no_horizontal_scroll(page)
        await screenshot(page, "room-phone-chat", full_page=False)

        await tabs.get_by_role("tab", name="Backchannel").click()
        await send(page, "#bc-input", "Posted from the phone #mobile")
        await expect(
            page.locator(".bc-list .post", has_text="Posted from the phone")
        ).to_be_visible()
        await no_horizontal_scroll(page)
        await screenshot(page, "room-phone-backchannel", full_page=False)

        # Keyboard: arrow keys move between tabs.
        await tabs.get_by_role("tab", name="Backchannel").focus()
        await page.keyboard.press("ArrowRight")
        await expect(tabs.get_by_role("tab", name="People")).to_be_focused()
        await expect(page.locator("#panel-people")).to_be_visible()
        await expect(page.locator(".people-list")).to_contain_text(
            "Pat on a phone", timeout=TIMEOUT
        )
        await tabs.get_by_role("tab", name="Stage").click()
        await expect(page.get_by_role("button", name="Raise your hand")).to_be_visible()
        await no_horizontal_scroll(page)
        await screenshot(page, "room-phone-stage", full_page=False)
        await assert_accessible(page, "the room on a phone")
        phone.assert_no_script_errors()
    finally:
        await phone.context.close()
