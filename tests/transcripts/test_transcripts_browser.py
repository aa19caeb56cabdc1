"""A host corrects the transcript in real Chromium: inline editor, keyboard, history, 375 px."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from live_transcript_support import write_transcribed
from playwright.async_api import Browser, expect

from conftest import LiveNode

sys.path.append(str(Path(__file__).resolve().parents[1] / "browser"))
from browser_support import (
    api,
    browser,  # noqa: F401 - fixture
    create_live_conversation,
    describe_violations,
    node,  # noqa: F401 - fixture
    open_person,
    run_axe,
    screenshot,
    sign_up,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
TIMEOUT = 10_000


async def transcribed_conversation(live: LiveNode, host_id: int, guest_id: int, slug: str) -> None:
    lines = [
        (host_id, 0.0, "Welcome to the stage. Today we talk about rivers."),
        (guest_id, 5.0, "Thank you for having me."),
        (host_id, 9.0, "Tell us about the houseboat."),
    ]
    await write_transcribed(live, slug, lines, 12, speaker_id=guest_id)


async def test_a_host_corrects_a_segment_and_sees_its_history(
    browser: Browser,  # noqa: F811
    node: LiveNode,  # noqa: F811
) -> None:
    host = await open_person(browser, node, "host", viewport={"width": 1200, "height": 900})
    guest = await open_person(browser, node, "guest", viewport={"width": 375, "height": 800})
    try:
        await sign_up(host, "Ana Host")
        await sign_up(guest, "Ben <b>Guest</b>")
        slug = await create_live_conversation(host, "Rivers and the cities beside them")
        status, body = await api(host.page, "POST", f"/api/conversations/{slug}/end", {})
        assert status == 200, body
        await transcribed_conversation(node, host.me["id"], guest.me["id"], slug)

        page = host.page
        await page.goto(f"/c/{slug}/transcript")
        segments = page.locator(".segment")
        await expect(segments).to_have_count(3, timeout=TIMEOUT)
        await expect(segments.nth(1).locator(".segment-speaker")).to_have_text("Ben <b>Guest</b>")
        await expect(segments.nth(1).locator(".segment-time")).to_contain_text("00:00:05")
        await screenshot(page, "transcript-desktop")

        # A segment's time plays the recording from there, on this page.
        player = page.locator("video#transcript-player")
        await expect(player).to_have_count(1)
        await page.wait_for_function(
            "document.getElementById('transcript-player').readyState >= 1", timeout=TIMEOUT
        )
        await segments.nth(2).locator(".segment-time").click()
        await page.wait_for_function(
            "Math.abs(document.getElementById('transcript-player').currentTime - 9) < 1",
            timeout=TIMEOUT,
        )
        assert page.url.endswith(f"/c/{slug}/transcript")  # seeked, did not navigate
        await page.evaluate("document.getElementById('transcript-player').pause()")

        # Escape cancels and gives focus back to the Edit button.
        second = segments.nth(1)
        await second.get_by_role("link", name="Edit").click()
        editor = second.locator("textarea")
        await expect(editor).to_be_focused()
        await editor.fill("Something else")
        await page.keyboard.press("Escape")
        await expect(second.locator("textarea")).to_have_count(0)
        await expect(second.get_by_role("link", name="Edit")).to_be_focused()
        await expect(second.locator(".segment-text")).to_have_text("Thank you for having me.")

        # Correct the words and the speaker; Ctrl+Enter saves.
        await second.get_by_role("link", name="Edit").click()
        await second.get_by_label("Words").fill("Thanks for having me <script>alert(1)</script>")
        await second.get_by_label("Speaker").select_option(label="Ana Host")
        await screenshot(page, "transcript-editing")
        await page.keyboard.press("Control+Enter")
        await expect(second.locator(".segment-text")).to_have_text(
            "Thanks for having me <script>alert(1)</script>", timeout=TIMEOUT
        )
        await expect(second.locator(".segment-speaker")).to_have_text("Ana Host")
        await expect(second.locator(".edited-mark")).to_be_visible()
        await expect(second.get_by_role("link", name="Edit")).to_be_focused()
        history = second.locator(".segment-history")
        await expect(history).to_be_visible()
        await history.locator("summary").click()
        await expect(history.locator("li")).to_have_count(2)
        await expect(history).to_contain_text("Thank you for having me.")
        await expect(history).to_contain_text("Ana Host")
        await screenshot(page, "transcript-history")

        # A refused correction says why and keeps what was typed.
        first = segments.nth(0)
        await first.get_by_role("link", name="Edit").click()
        await first.get_by_label("Words").fill("   ")
        await first.get_by_role("button", name="Save").click()
        await expect(first.locator(".editor-error")).to_contain_text("must not be empty")
        await page.keyboard.press("Escape")

        violations = await run_axe(page)
        assert not violations, describe_violations(violations)

        # The same form on a page of its own, for browsers without scripts.
        await page.goto(f"/c/{slug}/transcript/segments/2/edit")
        await expect(page.get_by_label("Words")).to_have_value("Tell us about the houseboat.")
        violations = await run_axe(page)
        assert not violations, describe_violations(violations)
        await screenshot(page, "transcript-edit-page")
        await page.goto(f"/c/{slug}/transcript")

        # The server renders the correction; everyone sees it, without the history.
        await expect(segments.nth(1).locator(".segment-text")).to_have_text(
            "Thanks for having me <script>alert(1)</script>"
        )
        await guest.page.goto(f"/c/{slug}/transcript")
        await expect(guest.page.locator(".segment").nth(1)).to_contain_text("Thanks for having me")
        await expect(guest.page.locator(".edit-button")).to_have_count(0)
        width = await guest.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways at 375 px ({width} px wide)"
        await screenshot(guest.page, "transcript-375")
        host.assert_no_script_errors()
        guest.assert_no_script_errors()
        assert not host.dialogs and not guest.dialogs
    finally:
        await host.context.close()
        await guest.context.close()
