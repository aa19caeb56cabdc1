"""Published conversations with indexed passages, for the search tests.

Built on knowledge_support.talk (Ana and Ben's two-topic conversation, transcript built by the
real job); the `search.index` job then runs as a worker would, with the real MiniLM embedder.
"""

from __future__ import annotations

import json
from typing import Any

from knowledge_support import talk
from transcripts_support import Person, World

from junto.jobs import queue
from junto.search import vectorstore
from junto.storage.tables import Conversation, Snippet


async def indexed_talk(
    world: World, host: Person, guest: Person, *, publish: bool = True, **fields: Any
) -> Conversation:
    conv = await talk(world, host, guest, **fields)
    # transcript.build queued search.index (junto.processing.after_transcript).
    assert await world.run_jobs("search.index") == 1
    if publish:
        answer = await host.post(f"/api/conversations/{conv.slug}/publish")
        assert answer.status_code == 200, answer.text
    return await world.conversation(conv.slug)


async def add_snippet(
    world: World, conv: Conversation, by: Person, title: str, start_ms: int, end_ms: int, text: str
) -> Snippet:
    async with world.node.db() as db:
        snippet = Snippet(slug=f"sn{conv.id}x{start_ms}"[:16], conversation_id=conv.id,
                          created_by=by.id, title=title, start_ms=start_ms, end_ms=end_ms,
                          text=text, speakers=json.dumps([by.id]), state="ready")  # fmt: skip
        db.add(snippet)
        await db.flush()
        await queue.enqueue(db, "search.index", {"snippet_id": snippet.id},
                            conversation_id=conv.id)  # fmt: skip
        await db.commit()
    assert await world.run_jobs("search.index") == 1
    return snippet


def fresh_vectors() -> None:
    """Forget every process-wide vector index (test databases reuse URLs)."""
    vectorstore._stores.clear()


async def search(person: Person, **params: Any) -> dict[str, Any]:
    answer = await person.client.get("/api/search", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
