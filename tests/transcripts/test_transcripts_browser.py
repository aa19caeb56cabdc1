"""A host corrects the transcript in real Chromium: inline editor, keyboard, history, 375 px."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from transcripts_support import words_at

from conftest import LiveNode
from junto.config import Settings
from junto.jobs.worker import run_worker
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import (
    Conversation,
    ConversationMedia,
    Participant,
    Recording,
    RecordingState,
    Role,
    TrackTranscript,
)

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


def make_video(path: Path, seconds: int) -> None:
    import imageio_ffmpeg  # type: ignore[import-untyped]

    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg = shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()
    source = f"testsrc=size=160x120:rate=10:duration={seconds}"
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-c:v",
            "libvpx",
            "-b:v",
            "100k",
            str(path),
        ],
        check=True,
    )


async def transcribed_conversation(live: LiveNode, host_id: int, guest_id: int, slug: str) -> None:
    """Recording pieces and their words written into the node's database, as the recorder and
    the transcript.track job would, then the real build job run against it."""
    settings = Settings(data_dir=live.data_dir, secret_key="live-test-secret")
    engine = make_engine(settings.effective_database_url)
    try:
        sessions = make_sessionmaker(engine)
        async with sessions() as db:
            conv = (
                await db.execute(select(Conversation).where(Conversation.slug == slug))
            ).scalar_one()
            assert conv.started_at is not None
            db.add(Participant(conversation_id=conv.id, user_id=guest_id, role=Role.SPEAKER))
            lines = [
                (host_id, 0.0, "Welcome to the stage. Today we talk about rivers."),
                (guest_id, 5.0, "Thank you for having me."),
                (host_id, 9.0, "Tell us about the houseboat."),
            ]
            for user_id, offset, text in lines:
                started = conv.started_at + timedelta(seconds=offset)
                rec = Recording(
                    conversation_id=conv.id,
                    user_id=user_id,
                    source="camera",
                    state=RecordingState.READY,
                    journal_path="x",
                    path="x.webm",
                    started_at=started,
                    heartbeat_at=started,
                    has_audio=True,
                )
                db.add(rec)
                await db.flush()
                words = json.dumps(words_at(0.0, text))
                db.add(TrackTranscript(recording_id=rec.id, model="tiny.en", words=words))
            # A small composite video (VP8, what any Chromium plays) so segment times can seek.
            video = live.data_dir / "recordings" / str(conv.id) / "composite.webm"
            make_video(video, seconds=12)
            db.add(
                ConversationMedia(
                    conversation_id=conv.id,
                    kind="composite",
                    path=str(video.relative_to(live.data_dir)),
                    mime="video/webm",
                    duration_s=12.0,
                    bytes=video.stat().st_size,
                )
            )
            await db.commit()
    finally:
        await engine.dispose()
    assert await run_worker(settings, "browser-test", once=True, kinds=["transcript.build"]) == 1


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
