"""The jobs API (GET /api/conversations/{slug}/jobs, POST /api/jobs/{id}/retry): who sees what,
who may retry."""

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
from junto.enums import JobState
from junto.jobs import queue
from junto.node import Node
from junto.storage.tables import Conversation, Job, User


@pytest.fixture(name="app")
async def app_fixture(settings: Settings) -> AsyncIterator[FastAPI]:
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=60):
        yield app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def post(c: httpx.AsyncClient, url: str, body: Any = None) -> httpx.Response:
    return await c.post(url, json=body, headers=await csrf_headers(c))


async def setup_jobs(app: FastAPI, slug: str) -> dict[str, int]:
    """A failed render and a running transcription in the conversation, one job without one."""
    node: Node = app.state.node
    async with node.db() as db:
        cid = await db.scalar(select(Conversation.id).where(Conversation.slug == slug))
        assert cid is not None
        failed = await queue.enqueue(db, "composite.render", {"conversation_id": cid},
                                     conversation_id=cid)  # fmt: skip
        running = await queue.enqueue(db, "transcript.build", {"conversation_id": cid},
                                      conversation_id=cid)  # fmt: skip
        loose = await queue.enqueue(db, "test.maintenance", {})
        await db.execute(
            update(Job)
            .where(Job.id == failed.id)
            .values(state=JobState.FAILED, error="ffmpeg failed: /secret/path", attempts=5)
        )
        await db.execute(
            update(Job)
            .where(Job.id == running.id)
            .values(state=JobState.RUNNING, progress=0.42, progress_note="transcribing")
        )
        await db.execute(
            update(Job).where(Job.id == loose.id).values(state=JobState.FAILED, error="x")
        )
        await db.commit()
    return {"failed": failed.id, "running": running.id, "loose": loose.id}


async def test_viewers_see_progress_managers_see_errors_and_retry(app: FastAPI) -> None:
    async with client(app) as host, client(app) as other, client(app) as anonymous:
        await signup(host, "hostess")
        await signup(other, "someone")
        made = await post(host, "/api/conversations", {"title": "Rendered talk"})
        assert made.status_code == 201, made.text
        slug = made.json()["slug"]
        ids = await setup_jobs(app, slug)

        seen = (await anonymous.get(f"/api/conversations/{slug}/jobs")).json()
        assert [j["kind"] for j in seen] == ["composite.render", "transcript.build"]
        assert seen[0]["state"] == "failed" and seen[0]["error"] is None
        assert seen[1]["progress"] == 0.42 and seen[1]["note"] == ""  # notes: managers only
        as_other = (await other.get(f"/api/conversations/{slug}/jobs")).json()
        assert all(j["error"] is None for j in as_other)
        as_host = (await host.get(f"/api/conversations/{slug}/jobs")).json()
        assert as_host[0]["error"] == "ffmpeg failed: /secret/path"
        assert as_host[1]["note"] == "transcribing"

        url = f"/api/jobs/{ids['failed']}/retry"
        refused = await post(anonymous, url)
        assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
        refused = await post(other, url)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert (await post(host, f"/api/jobs/{ids['loose']}/retry")).status_code == 403

        retried = await post(host, url)
        assert retried.status_code == 200, retried.text
        assert retried.json()["state"] == "queued" and retried.json()["attempts"] == 0
        again = await post(host, url)
        assert again.status_code == 409 and "only failed jobs" in again.json()["message"]
        missing = await post(host, "/api/jobs/999999/retry")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_admins_retry_jobs_without_a_conversation(app: FastAPI) -> None:
    async with client(app) as admin:
        me = await signup(admin, "operator")
        node: Node = app.state.node
        async with node.db() as db:
            await db.execute(update(User).where(User.id == me["id"]).values(is_admin=True))
            job = await queue.enqueue(db, "test.maintenance", {})
            await db.execute(update(Job).where(Job.id == job.id).values(state=JobState.FAILED))
            await db.commit()
        retried = await post(admin, f"/api/jobs/{job.id}/retry")
        assert retried.status_code == 200 and retried.json()["state"] == "queued"


async def test_invite_only_jobs_do_not_exist_for_outsiders(app: FastAPI) -> None:
    async with client(app) as host, client(app) as outsider:
        await signup(host, "hostess")
        await signup(outsider, "outsider")
        made = await post(host, "/api/conversations",
                          {"title": "Private", "visibility": "invite_only"})  # fmt: skip
        slug = made.json()["slug"]
        ids = await setup_jobs(app, slug)
        assert (await outsider.get(f"/api/conversations/{slug}/jobs")).status_code == 404
        hidden = await post(outsider, f"/api/jobs/{ids['failed']}/retry")
        assert hidden.status_code == 404
