"""The room page's live captions in headless Chromium: the CC toggle and the caption area.

The caption frames are handed to the page's realtime client as if they had come off the
socket (a `caption.partial` control frame through the client's frame parser, a `caption` room
event through the room's dispatcher): real speech through a real node is the media tests' job
(tests/media), this is about what a person sees and can do, at 375 px and on a desktop.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from browser_support import (  # noqa: F401 - fixtures
    CHROMIUM,
    Person,
    browser,
    create_live_conversation,
    open_person,
    run_axe,
    screenshot,
    sign_up,
)
from playwright.async_api import Browser, Page, expect

from conftest import LiveNode, make_live_node
from helpers import need_tool

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TIMEOUT = 10_000


@pytest.fixture(scope="module")
def captions_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    """A node with live captions on (the shared browser node has them off). The caption worker
    starts only when someone goes on air, which nobody does here."""
    need_tool(CHROMIUM, "Debian package chromium")
    live = make_live_node(tmp_path_factory.mktemp("captions-node"), JUNTO_CAPTIONS="1")
    live.start()
    yield live
    live.stop()


def person(user_id: int, name: str, colour: str = "#c0392b") -> dict[str, Any]:
    return {"id": user_id, "name": name, "colour": colour, "is_guest": False}


async def partial(page: Page, who: dict[str, Any], text: str) -> None:
    frame = {"type": "caption.partial", "user": who, "text": text, "start_ms": 1000}
    await page.evaluate("(raw) => window.junto.room.client.onMessage(raw)", json.dumps(frame))


async def final(
    page: Page, event_id: int, who: dict[str, Any], text: str, replaces: list[int] | None = None
) -> None:
    data: dict[str, Any] = {"user": who, "text": text, "start_ms": 1000, "end_ms": 3000}
    if replaces:
        data["replaces"] = replaces
    frame = {
        "type": "caption",
        "stream": "room",
        "id": event_id,
        "ts": "2026-11-26T09:30:00.000Z",
        "data": data,
    }
    await page.evaluate("(frame) => window.junto.room.onRoomEvent(frame)", frame)


async def test_captions_show_speakers_words_and_the_toggle_is_remembered(
    browser: Browser,  # noqa: F811 - the fixture imported above
    captions_node: LiveNode,
) -> None:
    host: Person = await open_person(
        browser, captions_node, "host", viewport={"width": 375, "height": 800}
    )
    try:
        await sign_up(host, "Host")
        slug = await create_live_conversation(host, "Captions at 375 px")
        page = host.page
        await page.goto(f"/c/{slug}")
        await expect(page.locator("#conn-status")).to_have_attribute(
            "data-status", "open", timeout=TIMEOUT
        )
        button = page.get_by_role("button", name="Captions")
        area = page.get_by_role("log", name="Live captions")
        await expect(button).to_be_visible()
        await expect(button).to_have_attribute("aria-pressed", "true")  # on by default

        ana, ben = person(11, "Ana"), person(12, "Ben O'Brien", "#1a6fd1")
        await partial(page, ana, "Rivers and the")
        line = area.locator(".caption-line.partial")
        await expect(line).to_have_text("Ana Rivers and the", timeout=TIMEOUT)
        await expect(line).to_have_attribute("aria-hidden", "true")  # previews are not read out
        await partial(page, ana, "Rivers and the cities")
        await final(page, 1001, ana, "Rivers and the cities built beside them.")
        await final(page, 1002, ben, "A <b>bold</b> claim & more.")  # text, never markup
        lines = area.locator(".caption-line")
        await expect(lines).to_have_count(2)
        await expect(area.locator(".partial")).to_have_count(0)  # the final replaced it
        await expect(lines.nth(1)).to_have_text("Ben O'Brien A <b>bold</b> claim & more.")
        assert await area.locator("b").count() == 0
        await partial(page, ana, "Bridges came")
        await final(page, 1003, ben, "Third line.")
        await final(page, 1004, ana, "Fourth line, the first one scrolls away.")
        await expect(lines).to_have_count(3)  # at most three lines (the preview went too)
        await expect(lines.first).to_contain_text("claim")
        await expect(area.locator(".caption-speaker").first).to_have_css("font-weight", "800")
        fits = await page.evaluate("document.documentElement.scrollWidth <= 375")
        assert fits, "the caption area makes the page scroll sideways at 375 px"
        await screenshot(page, "captions-375")
        assert not [v for v in await run_axe(page) if "caption" in json.dumps(v)]

        # Keyboard: Space on the focused button turns captions off, and the page remembers.
        await button.focus()
        await page.keyboard.press("Space")
        await expect(button).to_have_attribute("aria-pressed", "false")
        await expect(area).to_be_hidden()
        await page.reload()
        await expect(page.get_by_role("button", name="Captions")).to_have_attribute(
            "aria-pressed", "false", timeout=TIMEOUT
        )
        await page.get_by_role("button", name="Captions").click()
        await expect(page.get_by_role("button", name="Captions")).to_have_attribute(
            "aria-pressed", "true"
        )
        await page.set_viewport_size({"width": 1280, "height": 900})
        await final(page, 1, ana, "On a desktop the captions sit under the stage.")
        await screenshot(page, "captions-desktop", full_page=False)
        host.assert_no_script_errors()
    finally:
        await host.context.close()


async def test_a_revised_caption_replaces_the_pieces_in_place(
    browser: Browser,  # noqa: F811 - the fixture imported above
    captions_node: LiveNode,
) -> None:
    """A sentence split by a pause came as two captions; its revision (docs/protocol.md,
    `replaces`) takes the first line's place, in the same node, and the second line goes."""
    host: Person = await open_person(browser, captions_node, "reviser")
    try:
        await sign_up(host, "Reviser")
        slug = await create_live_conversation(host, "Revisions")
        page = host.page
        await page.goto(f"/c/{slug}")
        await expect(page.locator("#conn-status")).to_have_attribute(
            "data-status", "open", timeout=TIMEOUT
        )
        area = page.get_by_role("log", name="Live captions")
        lines = area.locator(".caption-line")
        ana, ben = person(11, "Ana"), person(12, "Ben")
        await final(page, 2001, ana, "The people who worked on the dogs")
        await final(page, 2002, ben, "Yes.")
        await final(page, 2003, ana, "cannot afford to stay.")
        await expect(lines).to_have_count(3)
        first = lines.first
        await first.evaluate("(node) => { node.dataset.seen = 'yes'; }")
        await final(
            page,
            2004,
            ana,
            "The people who worked on the docks cannot afford to stay.",
            [2001, 2003],
        )
        await expect(lines).to_have_count(2)
        await expect(first).to_have_text(
            "Ana The people who worked on the docks cannot afford to stay."
        )
        await expect(first).to_have_attribute("data-seen", "yes")  # updated in place
        await expect(lines.nth(1)).to_have_text("Ben Yes.")
        # A later revision may replace the revision in turn.
        await final(page, 2005, ana, "The people who worked on the docks cannot afford it.", [2004])
        await expect(first).to_have_text("Ana The people who worked on the docks cannot afford it.")
        await expect(lines).to_have_count(2)
        host.assert_no_script_errors()
    finally:
        await host.context.close()
