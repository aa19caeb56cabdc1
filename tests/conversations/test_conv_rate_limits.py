"""Per-account limits on making conversations and invite links: a clear 429 with Retry-After,
nothing stored by a refused request, one allowance for the whole node (issue 12)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from conv_support import world_fixture  # noqa: F401 - fixture
from sqlalchemy import func, select

from helpers import World
from junto.config import Settings
from junto.ratelimit import take_shared
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import Conversation, Invite


@pytest.fixture
def settings(settings: Settings) -> Settings:
    limits = replace(
        settings.limits,
        conversation_create_burst=2,
        conversation_create_per_second=1 / 600,
        invite_create_burst=3,
        invite_create_per_second=1 / 60,
    )
    return replace(settings, limits=limits)


async def count(world: World, table: type[Conversation] | type[Invite]) -> int:
    async with world.node.db() as db:
        return int(await db.scalar(select(func.count()).select_from(table)) or 0)


def assert_limited(response: httpx.Response, most_s: int) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= most_s
    body = response.json()
    assert body["error"] == "rate_limited"
    assert body["message"].startswith("too many ")


async def test_making_conversations_too_fast_is_refused_with_retry_after(world: World) -> None:
    ana, ben = await world.member("ana"), await world.member("ben")
    # Refused requests use up nothing.
    for _ in range(3):
        assert (await ana.post("/api/conversations", {"title": ""})).status_code == 422
    await ana.create(title="One")
    await ana.create(title="Two")
    limited = await ana.post("/api/conversations", {"title": "Three"})
    assert_limited(limited, 600)
    # The form says it too, with the same status, and stores nothing either.
    page = await ana.form("/conversations/new", {"title": "Four", "visibility": "public"})
    assert page.status_code == 429 and "too many conversations" in page.text
    assert await count(world, Conversation) == 2
    # Per account: Ben has his own allowance.
    await ben.create(title="Ben's")
    assert await count(world, Conversation) == 3


async def test_making_invite_links_too_fast_is_refused_with_retry_after(world: World) -> None:
    ana, ben = await world.member("ana"), await world.member("ben")
    slug = (await ana.create(title="Panel"))["slug"]
    other = (await ben.create(title="Other"))["slug"]
    url = f"/api/conversations/{slug}/invites"
    assert (await ana.post(url, {"max_uses": 0})).status_code == 422  # refused: costs nothing
    for _ in range(3):
        assert (await ana.post(url, {})).status_code == 201
    assert_limited(await ana.post(url, {}), 60)
    # The edit page's form is refused too, and says why.
    page = await ana.form(f"/c/{slug}/invites", {"role": "speaker"})
    assert page.status_code == 303
    edit = await ana.client.get(page.headers["location"])
    assert "too many invite links just now" in edit.text
    assert await count(world, Invite) == 3
    assert (await ben.post(f"/api/conversations/{other}/invites", {})).status_code == 201


async def test_one_allowance_for_every_process(settings: Settings) -> None:
    """Takers in two engines (two processes' pools) on one database, all at once: exactly
    `burst` of them get a token, on SQLite (its write lock) and PostgreSQL (the row lock)."""
    engines = [make_engine(settings.effective_database_url) for _ in range(2)]
    from junto.storage.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    try:
        makers = [make_sessionmaker(e) for e in engines]

        async def take(i: int) -> float:
            async with makers[i % 2]() as db:
                wait = await take_shared(db, "conversation:7", 5, 1 / 600)
                await db.commit()
                return wait

        waits = await asyncio.gather(*(take(i) for i in range(16)))
        assert sum(1 for w in waits if w == 0.0) == 5
        assert all(500 < w <= 600 for w in waits if w > 0)
    finally:
        for engine in engines:
            await engine.dispose()
