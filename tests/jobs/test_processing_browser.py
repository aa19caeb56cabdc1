"""The Processing panel in real Chromium: progress bars, errors for hosts, keyboard retry, and
polling that stops once everything is done."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser, expect
from sqlalchemy import select, update

from conftest import LiveNode, free_port
from junto import conversations as convs
from junto.app import build_app
from junto.config import Settings
from junto.enums import JobState, RecordingState
from junto.jobs import queue
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import Conversation, Job, Recording
from junto.storage.types import utcnow
from junto.web.render import templates

sys.path.append(str(Path(__file__).resolve().parents[1] / "browser"))
from browser_support import (
    api,
    browser,  # noqa: F401 - fixture
    describe_violations,
    open_person,
    run_axe,
    screenshot,
    sign_up,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
TIMEOUT = 10_000
TRACK = "Transcribing Ana Host\u2019s track"  # the typographic apostrophe
PAGE = templates.env.from_string(
    '{% extends "base.html" %}{% block main %}{% include "_processing.html" %}{% endblock %}'
)


def processing_app(settings: Settings) -> FastAPI:
    """The node's app plus a bare page holding only the panel, as room and transcript pages
    include it."""
    app = build_app(settings)

    @app.get("/test/processing/{slug}")
    async def page(request: Request, slug: str) -> HTMLResponse:
        node = request.app.state.node
        async with node.db() as db:
            conv = await convs.get_by_slug(db, slug)
            assert conv is not None  # the tests open only conversations they made
            manage = await convs.can_manage(db, conv, getattr(request.state, "user", None))
        html = PAGE.render(
            request=request, conversation=SimpleNamespace(slug=slug), can_manage=manage,
            viewer=getattr(request.state, "user", None),
            csrf_token=getattr(request.state, "csrf_token", ""),
        )  # fmt: skip
        return HTMLResponse(html)

    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveNode, Settings]]:
    data_dir = tmp_path_factory.mktemp("processing")
    settings = Settings(data_dir=data_dir, secret_key="processing-test", workers=0,
                        media_backend="none", captions=False, recording=False)  # fmt: skip
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(processing_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield LiveNode(data_dir=data_dir, port=port, env={}), settings
    server.should_exit = True
    thread.join(10)


async def add_jobs(settings: Settings, slug: str, host_id: int) -> tuple[int, int]:
    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            cid = (
                await db.execute(select(Conversation.id).where(Conversation.slug == slug))
            ).scalar_one()
            rec = Recording(conversation_id=cid, user_id=host_id, source="camera",
                            state=RecordingState.READY, journal_path="j", path="p.webm",
                            started_at=utcnow())  # fmt: skip
            db.add(rec)
            await db.flush()
            render_job = await queue.enqueue(db, "composite.render", {"conversation_id": cid},
                                             conversation_id=cid)  # fmt: skip
            track = await queue.enqueue(db, "transcript.track", {"recording_id": rec.id},
                                        conversation_id=cid)  # fmt: skip
            await db.execute(
                update(Job)
                .where(Job.id == render_job.id)
                .values(
                    state=JobState.RUNNING, progress=0.3, progress_note="rendering: 0:09 of 0:30"
                )
            )
            await db.execute(update(Job).where(Job.id == track.id).values(
                state=JobState.FAILED, attempts=5,
                error="ValueError: bad audio\n<b>not markup</b>"))  # fmt: skip
            await db.commit()
            return render_job.id, track.id
    finally:
        await engine.dispose()


async def finish(settings: Settings, *job_ids: int) -> None:
    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            done = {"state": JobState.SUCCEEDED, "progress": 1.0, "finished_at": utcnow()}
            await db.execute(update(Job).where(Job.id.in_(job_ids)).values(**done))
            await db.commit()
    finally:
        await engine.dispose()


async def test_processing_panel(
    browser: Browser,  # noqa: F811 - fixture
    served: tuple[LiveNode, Settings],
) -> None:
    live, settings = served
    host = await open_person(browser, live, "Host")
    viewer = await open_person(browser, live, "Viewer")
    try:
        me = await sign_up(host, "Ana Host")
        status, body = await api(host.page, "POST", "/api/conversations", {"title": "Rendered"})
        assert status == 201, body
        slug = body["slug"]
        render_id, track_id = await add_jobs(settings, slug, me["id"])

        page = host.page
        await page.goto(f"/test/processing/{slug}")
        panel = page.locator("section.processing")
        await expect(panel).to_be_visible(timeout=TIMEOUT)
        items = panel.locator(".processing-item")
        await expect(items).to_have_count(2)
        # In the order they ran and will run: the failed track, then the video being rendered.
        await expect(items.locator(".processing-title")).to_have_text(
            [TRACK, "Rendering the video"]
        )
        rendering = items.filter(has_text="Rendering the video")
        track = items.filter(has_text=TRACK)
        await expect(rendering.locator("progress")).to_have_attribute("value", "30")
        await expect(rendering.locator(".processing-percent")).to_have_text("30%")
        await expect(rendering.locator(".processing-note")).to_have_text("rendering: 0:09 of 0:30")
        await expect(track.locator(".processing-title")).to_have_text(TRACK)
        error = track.locator(".processing-error-text")
        await expect(error).to_contain_text("ValueError: bad audio")
        await expect(error).to_contain_text("<b>not markup</b>")
        assert await error.locator("br").count() == 1  # one line each
        assert await track.locator("b").count() == 0  # shown as text, never as markup
        violations = await run_axe(page)
        assert not violations, describe_violations(violations)
        await screenshot(page, "processing-host")

        # Someone who may only watch sees that a step failed, not why, and cannot retry.
        await viewer.page.goto(f"/test/processing/{slug}")
        # (without the speaker's name: that is for hosts)
        failed = viewer.page.locator(".processing-item").filter(has_text="Transcribing a track")
        await expect(failed).to_contain_text("the hosts can retry it", timeout=TIMEOUT)
        assert await failed.locator("button, .processing-error-text").count() == 0

        # Retry from the keyboard.
        button = track.get_by_role("button", name=f"Retry: {TRACK}")
        await button.focus()
        await page.keyboard.press("Enter")
        await expect(track.locator(".processing-state")).to_have_text("Waiting", timeout=TIMEOUT)
        summary = panel.locator(".processing-summary")
        await expect(summary).to_contain_text(f"{TRACK}: Waiting.")

        # Both finish: the panel says so and stops asking.
        await finish(settings, render_id, track_id)
        await expect(summary).to_contain_text("All done.", timeout=TIMEOUT)
        # Finished steps fold away (the page's own content comes first), one click from view.
        await expect(panel.locator(".processing-list")).to_be_hidden()
        toggle = panel.get_by_role("button", name="Show the steps")
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await toggle.click()
        await expect(items.locator(".processing-state")).to_have_text(["Done", "Done"])
        await expect(panel.get_by_role("button", name="Hide the steps")).to_have_attribute(
            "aria-expanded", "true"
        )
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/jobs" in r.url else None)
        await asyncio.sleep(4.5)
        assert polls == [], "polling stopped once nothing was queued or running"
        host.assert_no_script_errors()
        viewer.assert_no_script_errors()
    finally:
        await host.context.close()
        await viewer.context.close()
