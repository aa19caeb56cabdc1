"""The conversation page in real Chromium: seeking from words, the highlighted word following
playback, search in the transcript, backchannel replay, ?t=, axe, 1280 and 375 px screenshots."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select, update

sys.path.append(str(Path(__file__).resolve().parents[1] / "transcripts"))
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
from live_transcript_support import write_transcribed
from published_support import LINES

from conftest import LiveNode
from junto.config import Settings
from junto.enums import JobState
from junto.knowledge import store as knowledge_store
from junto.knowledge.model import Chapter, Knowledge, Moment
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import Conversation, Job

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
TIMEOUT = 10_000
SECONDS = 14


async def assert_accessible(page: Page) -> None:
    violations = await run_axe(page)  # raises if axe-core is not installed: CI must have it
    assert not violations, describe_violations(violations)


async def prepare(live: LiveNode, slug: str, host_id: int, guest_id: int) -> None:
    """Pieces with words, a composite and backchannel posts, as the node's parts write them."""
    lines = [((host_id, guest_id)[who], offset, text) for who, offset, text in LINES]
    # Words stored as older transcripts stored Whisper's pieces ("$4" ",500", no flag): the page
    # shows and searches them as one written word.
    lines.append((guest_id, 12.5, "It costs $4 ,500 now."))
    posts = [(guest_id, 2500, "First <b>post</b>"), (host_id, 6000, "Second post")]
    await write_transcribed(live, slug, lines, SECONDS, speaker_id=guest_id, posts=posts)


async def compute_knowledge(live: LiveNode, slug: str) -> None:
    """What the knowledge.extract job would store, and the job marked done."""
    settings = Settings(data_dir=live.data_dir, secret_key="live-test-secret")
    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            conv = (
                await db.execute(select(Conversation).where(Conversation.slug == slug))
            ).scalar_one()
            await knowledge_store.save(
                db,
                conv.id,
                Knowledge(
                    backend="offline",
                    model="test",
                    computed_at=datetime.now(UTC),
                    summary=[Moment(text="We talk about rivers.", start_ms=1600, end_ms=4000)],
                    chapters=[
                        Chapter(title="Rivers", start_ms=0, end_ms=9000),
                        Chapter(title="The houseboat", start_ms=9000, end_ms=SECONDS * 1000),
                    ],
                ),
                None,
                None,
            )
            await db.execute(
                update(Job)
                .where(Job.conversation_id == conv.id, Job.kind == "knowledge.extract")
                .values(state=JobState.SUCCEEDED, progress=1.0)
            )
            await db.commit()
    finally:
        await engine.dispose()


async def test_a_reader_follows_and_seeks_the_transcript(
    browser: Browser,  # noqa: F811
    node: LiveNode,  # noqa: F811
) -> None:
    host = await open_person(browser, node, "host", viewport={"width": 1280, "height": 900})
    reader = await open_person(browser, node, "reader", viewport={"width": 375, "height": 812})
    if not (
        Path(__file__).resolve().parents[2] / "src/junto/web/static/js/snippet-maker.js"
    ).exists():
        # The snippet maker is another part; its absence must not break this page.
        for person in (host, reader):
            await person.context.route(
                "**/static/js/snippet-maker.js",
                lambda r: r.fulfill(status=200, content_type="text/javascript", body=""),
            )
    try:
        await sign_up(host, "Ana Host")
        await sign_up(reader, "Ben <i>Guest</i>")
        slug = await create_live_conversation(host, "Rivers and cities", visibility="public")
        status, body = await api(host.page, "POST", f"/api/conversations/{slug}/end", {})
        assert status == 200, body
        await prepare(node, slug, host.me["id"], reader.me["id"])

        # The host reviews and publishes from the page.
        page = host.page
        await page.goto(f"/c/{slug}")
        await expect(page.locator("#review")).to_contain_text("Transcript: ready")
        # The summary is being computed; once it is, the page offers to show it.
        await expect(page.locator("#knowledge-pending")).to_be_visible()
        await screenshot(page, "published-review-1280")
        await assert_accessible(page)
        await compute_knowledge(node, slug)
        show = page.get_by_role("link", name="Show the summary")
        await expect(show).to_be_visible(timeout=TIMEOUT)
        await show.click()
        await expect(page.locator("#chapters li")).to_have_count(2)
        await expect(page.locator("#summary")).to_contain_text("We talk about rivers.")
        await page.get_by_role("button", name="Publish", exact=True).click()
        await expect(page.locator("#conv-state")).to_have_text("Published", timeout=TIMEOUT)

        await page.wait_for_function(
            "() => document.getElementById('player').readyState >= 1", timeout=TIMEOUT
        )
        words = page.locator("#transcript span.w")
        assert await words.count() > 20
        # Backchannel posts wait for their moment.
        posts = page.locator("#backchannel-replay .bc-post")
        await expect(posts.first).to_be_hidden()
        await expect(posts.first).to_contain_text("First <b>post</b>")

        # A click on a word seeks the player to that word (±0.5 s).
        target = page.locator("#transcript span.w", has_text="houseboat")
        start_s = int(await target.get_attribute("data-start") or "0") / 1000
        await target.click()
        await page.wait_for_function(
            "(t) => Math.abs(document.getElementById('player').currentTime - t) <= 0.5",
            arg=start_s,
            timeout=TIMEOUT,
        )
        await expect(posts.nth(1)).to_be_visible()  # both posts are before 9 s
        chapters = page.locator("#chapters li")
        await expect(chapters.nth(1)).to_have_attribute("aria-current", "true")
        await expect(chapters.nth(0)).not_to_have_attribute("aria-current", "true")
        # A chapter seeks too.
        await chapters.nth(0).get_by_role("link").click()
        await page.wait_for_function(
            "() => document.getElementById('player').currentTime < 0.5", timeout=TIMEOUT
        )
        await expect(chapters.nth(0)).to_have_attribute("aria-current", "true")
        await expect(posts.first).to_be_hidden()

        # Playing, the highlighted word follows the player.
        await page.evaluate(
            "() => { const p = document.getElementById('player'); p.muted = true;"
            " p.currentTime = 5; return p.play(); }"
        )
        await page.wait_for_function(
            """() => {
                const p = document.getElementById('player');
                const now = document.querySelector('#transcript span.w.now');
                return p.currentTime > 6 && now &&
                    Number(now.dataset.start) <= p.currentTime * 1000 + 50 &&
                    p.currentTime * 1000 - Number(now.dataset.start) < 2000;
            }""",
            timeout=TIMEOUT,
        )
        assert await page.locator("#transcript span.w.now").count() == 1
        await page.evaluate("document.getElementById('player').pause()")

        # Search in the transcript: marks, counts, Enter steps through.
        query = page.get_by_label("Search the transcript")
        await page.locator("body").press("/")  # the keyboard shortcut focuses the search
        await expect(query).to_be_focused()
        await query.fill("the")
        await expect(page.locator("#search-count")).to_contain_text("of", timeout=TIMEOUT)
        hits = await page.locator("#transcript span.w.hit").count()
        assert hits >= 3
        await expect(page.locator("#search-count")).to_have_text(f"1 of {hits} matches")
        await query.press("Enter")
        await expect(page.locator("#search-count")).to_have_text(f"2 of {hits} matches")
        await query.press("Shift+Enter")
        await expect(page.locator("#search-count")).to_have_text(f"1 of {hits} matches")
        await query.fill("houseboat")
        await expect(page.locator("#search-count")).to_have_text("1 of 1 match")
        await expect(page.locator("#transcript span.w.hit-current")).to_have_text("houseboat")
        await expect(page.locator("#transcript")).to_contain_text("It costs $4,500 now.")
        await query.fill("4,500")
        await expect(page.locator("#search-count")).to_have_text("1 of 1 match")
        await expect(page.locator("#transcript span.w.hit-current")).to_have_text(["$4", ",500"])
        await screenshot(page, "published-1280")
        await assert_accessible(page)

        # ?t= seeks on load; on a phone the page fits the width.
        phone = reader.page
        await phone.goto(f"/c/{slug}?t=0:09")
        await phone.wait_for_function(
            "() => Math.abs(document.getElementById('player').currentTime - 9) <= 0.5",
            timeout=TIMEOUT,
        )
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways at 375 px ({width} px wide)"
        await screenshot(phone, "published-375")
        await assert_accessible(phone)
        host.assert_no_script_errors()
        reader.assert_no_script_errors()
    finally:
        await host.context.close()
        await reader.context.close()
