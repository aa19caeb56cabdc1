"""The search.index job (replaces a conversation's passages atomically, follows deletions) and
the vector index finding new passages at once (the shared file: test_search_vector_file.py)."""

from __future__ import annotations

import numpy as np
import pytest
from knowledge_support import job_context
from search_support import add_snippet, fresh_vectors, indexed_talk, search
from sqlalchemy import delete, select
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.search import passages as ps
from junto.search.jobs import index
from junto.storage.tables import Conversation, SearchPassage, Snippet


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_vectors()


async def rows(world: World, conversation_id: int) -> list[SearchPassage]:
    async with world.node.db() as db:
        found = await db.execute(
            select(SearchPassage)
            .where(SearchPassage.conversation_id == conversation_id)
            .order_by(SearchPassage.start_ms)
        )
        return list(found.scalars())


async def test_index_job_replaces_atomically_and_follows_deletions(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    conv = await indexed_talk(world, ana, ben)
    first = await rows(world, conv.id)
    # 16 lines of one or two sentences, each its own segment: one passage per line.
    assert len(first) == 16
    assert all(p.embedding is not None and len(p.embedding) == 768 for p in first)
    assert {p.user_id for p in first} == {ana.id, ben.id}
    assert first[0].start_ms == 0 and first[0].text.startswith("Welcome to the stage.")
    reader = world.anonymous()
    assert (await search(reader, q="harbour grain timber"))["total"] > 0

    # Indexing again swaps the whole set at once.
    ctx = job_context(world, conv.id)
    ctx.kind = "search.index"
    await index(ctx)
    second = await rows(world, conv.id)
    assert [p.text for p in second] == [p.text for p in first]
    assert not {p.id for p in first} & {p.id for p in second}

    # An indexing that fails half-way (the model breaks) leaves the old passages in place.
    async def broken(texts: object) -> np.ndarray:
        raise RuntimeError("model broke")

    monkeypatch.setattr(ps, "embed", broken)
    with pytest.raises(RuntimeError):
        await index(ctx)
    assert [p.id for p in await rows(world, conv.id)] == [p.id for p in second]
    monkeypatch.undo()

    # New passages (another conversation) are found by meaning at once: the vector index
    # notices the new ids with one cheap query.
    cara = await world.member("cara", "Cara Host")
    other = await indexed_talk(world, cara, ben, title="Second talk")
    para = await search(reader, q="aquatic animals returned after a decade", limit=50)
    assert {h["conversation"] for h in para["results"][:2]} == {conv.slug, other.slug}

    # A deleted snippet or conversation loses its passages when the job runs.
    snippet = await add_snippet(world, conv, ana, "Fish", 1000, 2000, "Fish came back.")
    async with world.node.db() as db:
        await db.execute(delete(Snippet).where(Snippet.id == snippet.id))
        await db.commit()
    ctx.payload = {"snippet_id": snippet.id}
    await index(ctx)
    assert not [p for p in await rows(world, conv.id) if p.snippet_id is not None]
    async with world.node.db() as db:
        await db.execute(delete(Conversation).where(Conversation.id == other.id))
        await db.commit()
    ctx.payload = {"conversation_id": other.id}
    await index(ctx)
    assert await rows(world, other.id) == []
    para = await search(reader, q="aquatic animals returned after a decade", limit=50)
    assert {h["conversation"] for h in para["results"]} == {conv.slug}
