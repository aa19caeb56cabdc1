"""A host's transcript correction reaches the snippets cut before it, and the search index.

A correction may remove a private detail on purpose: the removed word must then be gone from
the snippet's text, page, Open Graph and oEmbed text, captions (served and on disk) and from
search, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from search_support import fresh_vectors, search
from snippets_support import line_range, make_media, snippetable
from sqlalchemy import func, select
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from helpers import Person, eventually
from junto.enums import JobState
from junto.storage.tables import SearchPassage

# TALK's line 1, Ben: "Thank you for having me. I grew up on a river, so this topic is personal."
PRIVATE, REPLACEMENT = "personal", "dear"
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from snippets_support import talk_seconds

    return make_media(tmp_path_factory.mktemp("media"), talk_seconds())


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_vectors()


async def hits_in(reader: Person, slug: str, q: str) -> list[dict[str, Any]]:
    return [
        h for h in (await search(reader, q=q, limit=50))["results"] if h["conversation"] == slug
    ]


async def passages(world: World, conversation_id: int) -> int:
    async with world.node.db() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(SearchPassage)
            .where(SearchPassage.conversation_id == conversation_id)
        )
        return int(count or 0)


async def everything_shown(world: World, slug: str) -> str:
    """All a reader can get about the snippet: API JSON, page (with Open Graph tags), embed,
    oEmbed and captions."""
    anon = world.anonymous().client
    parts = []
    for url in (
        f"/api/snippets/{slug}",
        f"/s/{slug}",
        f"/s/{slug}/embed",
        f"/s/{slug}/captions.vtt",
    ):
        answer = await anon.get(url)
        assert answer.status_code == 200, (url, answer.text)
        parts.append(answer.text)
    page_url = f"http://testserver/s/{slug}"
    oembed = await anon.get("/oembed", params={"url": page_url, "format": "json"})
    assert oembed.status_code == 200, oembed.text
    parts.append(oembed.text)
    return "\n".join(parts)


async def test_a_correction_reaches_earlier_snippets_and_search(
    world: World, media: tuple[Path, Path]
) -> None:
    ana = await world.member("ana", "Ana")
    ben = await world.member("ben", "Ben")
    cy = await world.member("cyd", "Cy")
    conv = await snippetable(world, ana, ben, media)
    assert await world.run_jobs("search.index") == 1  # the conversation's passages
    start, end, line = line_range(1)
    assert line.endswith(f"is {PRIVATE}.")
    made = await cy.post(
        f"/api/conversations/{conv.slug}/snippets", {"start_ms": start, "end_ms": end}
    )
    assert made.status_code == 201, made.text
    slug = made.json()["slug"]
    assert await world.run_jobs("search.index") == 1  # the snippet's passage
    reader = world.anonymous()
    before = await hits_in(reader, conv.slug, PRIVATE)
    assert any(PRIVATE in h["text"] for h in before), before
    assert any(h["snippet"] == slug for h in before), "the snippet itself is found too"
    assert PRIVATE in await everything_shown(world, slug)

    corrected = line.replace(PRIVATE, REPLACEMENT)
    answer = await ana.patch(
        f"/api/conversations/{conv.slug}/transcript/segments/1", {"text": corrected}
    )
    assert answer.status_code == 200, answer.text

    # At once, before any job has run: the snippet says what the transcript now says ...
    shown = await everything_shown(world, slug)
    assert PRIVATE not in shown and REPLACEMENT in shown
    about = (await world.anonymous().client.get(f"/api/snippets/{slug}")).json()
    assert about["text"] == corrected and about["title"].startswith("Thank you for having me.")
    # ... and searching for the removed word finds nothing in this conversation.
    assert not [h for h in await hits_in(reader, conv.slug, PRIVATE) if PRIVATE in str(h)]

    # The queued jobs re-make the passages (the conversation's after a short settling delay)
    # and the captions file on disk.
    async def indexed() -> bool:
        if not [j for j in await world.jobs("search.index") if j.state != JobState.SUCCEEDED]:
            return True
        await world.run_jobs("search.index")
        return False

    await eventually(indexed, DEADLINE_S, what="search.index to run", every=0.2)
    on_disk = (world.settings.data_dir / "snippets" / slug / "captions.vtt").read_text()
    assert PRIVATE not in on_disk and REPLACEMENT in on_disk
    assert await passages(world, conv.id) == 17  # 16 lines and the snippet, all back
    assert not [h for h in await hits_in(reader, conv.slug, PRIVATE) if PRIVATE in str(h)]
    found = await hits_in(reader, conv.slug, f"this topic is {REPLACEMENT}")
    assert any(REPLACEMENT in h["text"] and h["snippet"] == slug for h in found), found
    assert any(REPLACEMENT in h["text"] and h["snippet"] is None for h in found), found
