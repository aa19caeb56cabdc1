"""Review: a conversation's jobs follow its page's rule. Under review only its reviewers see
them (everyone else gets the transcript's 404); after publishing the public sees coarse
progress, never a speaker's name or a job's note; hosts, co-hosts and admins see everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]
from fastapi import FastAPI
from sqlalchemy import select, update

from helpers import csrf_headers, signup
from junto.app import build_app
from junto.config import Settings
from junto.enums import JobState, RecordingState
from junto.jobs import queue
from junto.node import Node
from junto.storage.tables import Conversation, Job, Recording, User
from junto.storage.types import utcnow

SPEAKER_NAME = "Zuleika Quintero-Fairweather"
NOTE = "transcribing Zuleika: 0:41 of 3:10"


@pytest.fixture(name="app")
async def app_fixture(settings: Settings) -> AsyncIterator[FastAPI]:
    app = build_app(settings.with_overrides(captions=False, recording=False))
    async with LifespanManager(app, startup_timeout=60):
        yield app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def send(c: httpx.AsyncClient, method: str, url: str, body: Any = None) -> None:
    response = await c.request(method, url, json=body, headers=await csrf_headers(c))
    assert response.status_code in (200, 201), response.text


async def speaker_track_job(app: FastAPI, slug: str, speaker_id: int) -> None:
    """A running transcription of the speaker's recording, as the worker reports it."""
    node: Node = app.state.node
    async with node.db() as db:
        cid = await db.scalar(select(Conversation.id).where(Conversation.slug == slug))
        rec = Recording(conversation_id=cid, user_id=speaker_id, source="camera",
                        state=RecordingState.READY, journal_path="j", path="p.webm",
                        started_at=utcnow())  # fmt: skip
        db.add(rec)
        await db.flush()
        job = await queue.enqueue(db, "transcript.track", {"recording_id": rec.id},
                                  conversation_id=cid)  # fmt: skip
        await db.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(state=JobState.RUNNING, progress=0.2, progress_note=NOTE)
        )
        await db.commit()


async def make_admin(app: FastAPI, user_id: int) -> None:
    node: Node = app.state.node
    async with node.db() as db:
        await db.execute(update(User).where(User.id == user_id).values(is_admin=True))
        await db.commit()


def coarse(jobs: list[dict[str, Any]]) -> None:
    assert jobs, "expected the conversation's jobs"
    for job in jobs:
        assert job["subject"] is None and job["note"] == "" and job["error"] is None, job
    assert SPEAKER_NAME not in str(jobs) and "Zuleika" not in str(jobs)


async def test_jobs_follow_review_and_never_name_speakers_to_the_public(app: FastAPI) -> None:
    async with (
        client(app) as host,
        client(app) as speaker,
        client(app) as audience,
        client(app) as admin,
        client(app) as anonymous,
    ):
        await signup(host, "hostess")
        speaker_me = await signup(speaker, "zuleika", display_name=SPEAKER_NAME)
        await signup(audience, "ana")
        await make_admin(app, (await signup(admin, "root"))["id"])
        made = await host.post(
            "/api/conversations", json={"title": "A talk"}, headers=await csrf_headers(host)
        )
        slug = made.json()["slug"]
        base = f"/api/conversations/{slug}"
        await send(host, "PUT", f"{base}/participants/{speaker_me['id']}/role", {"role": "speaker"})
        await send(host, "POST", f"{base}/start")
        await send(host, "POST", f"{base}/end")
        await speaker_track_job(app, slug, speaker_me["id"])
        jobs_url = f"{base}/jobs"

        # Under review: reviewers only, like the transcript.
        for outsider in (anonymous, audience):
            hidden = await outsider.get(jobs_url)
            assert hidden.status_code == 404, hidden.text
            assert (await outsider.get(f"/c/{slug}/transcript")).status_code == 404
        coarse((await speaker.get(jobs_url)).json())  # a reviewer, not a manager
        for manager in (host, admin):
            full = (await manager.get(jobs_url)).json()
            track = next(j for j in full if j["kind"] == "transcript.track")
            assert track["subject"] == SPEAKER_NAME and track["note"] == NOTE

        # Published: the public sees how far processing is, not whose track or what it says.
        await send(host, "POST", f"{base}/publish")
        for reader in (anonymous, audience):
            public = await reader.get(jobs_url)
            assert public.status_code == 200, public.text
            coarse(public.json())
            track = next(j for j in public.json() if j["kind"] == "transcript.track")
            assert track["state"] == "running" and track["progress"] == 0.2
        full = (await host.get(jobs_url)).json()
        assert next(j for j in full if j["kind"] == "transcript.track")["subject"] == SPEAKER_NAME

        # Unpublished: back to reviewers only.
        await send(host, "POST", f"{base}/unpublish")
        assert (await anonymous.get(jobs_url)).status_code == 404
