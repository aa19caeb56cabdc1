"""The snippet allowance is one per member for the whole node, not one per process: two app
instances on one database (two `junto serve` processes) share it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]
from snippets_support import line_range, make_media, snippet_count, snippetable, talk_seconds
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from helpers import Person, csrf_headers
from junto.app import build_app
from junto.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    limits = replace(settings.limits, snippet_create_burst=2, snippet_create_per_second=1 / 600)
    return replace(settings, limits=limits)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_media(tmp_path_factory.mktemp("media"), talk_seconds())


@pytest.fixture
async def other_process(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A second node process on the same database and data dir (cookies work on both)."""
    app = build_app(world.settings)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


async def create_on(
    client: httpx.AsyncClient, person: Person, slug: str, body: object
) -> httpx.Response:
    client.cookies = person.client.cookies  # the same browser, sent to the other process
    url = f"/api/conversations/{slug}/snippets"
    return await client.post(url, json=body, headers=await csrf_headers(person.client))


async def test_the_snippet_limit_is_shared_by_the_node_processes(
    world: World, media: tuple[Path, Path], other_process: httpx.AsyncClient
) -> None:
    ana, ben, cy = (
        await world.member("ana", "Ana"),
        await world.member("ben", "Ben"),
        await world.member("cyd", "Cy"),
    )
    conv = await snippetable(world, ana, ben, media)
    start, end, _ = line_range(3)
    good = {"start_ms": start, "end_ms": end}
    # Refused requests do not use up the allowance, on either process.
    for client in (world.client(), other_process):
        refused = await create_on(client, cy, conv.slug, {"start_ms": end, "end_ms": start})
        assert refused.status_code == 422
    for _ in range(2):
        made = await cy.post(f"/api/conversations/{conv.slug}/snippets", good)
        assert made.status_code == 201, made.text
    # The other process knows that Cy has made two already.
    limited = await create_on(other_process, cy, conv.slug, good)
    assert limited.status_code == 429, limited.text
    assert 500 <= int(limited.headers["retry-after"]) <= 600
    assert limited.json()["error"] == "rate_limited"
    assert "too many snippets" in limited.json()["message"]
    # Per member: Ana may still make one there.
    assert (await create_on(other_process, ana, conv.slug, good)).status_code == 201
    assert await snippet_count(world) == 3
