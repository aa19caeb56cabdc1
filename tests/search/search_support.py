"""Published conversations with indexed passages, for the search tests.

Built on knowledge_support.talk (Ana and Ben's two-topic conversation, transcript built by the
real job); the `search.index` job then runs as a worker would, with the real MiniLM embedder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge_support import talk
from transcripts_support import World, words_at

from helpers import Person
from junto import snippets
from junto.enums import Role
from junto.jobs import queue
from junto.search import vectorstore
from junto.storage.tables import Conversation, Snippet

Key = tuple[int, int]  # (meeting, line) in meetings.json


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
        # A ready snippet has its folder of files (the index job rewrites its captions there).
        (world.settings.data_dir / snippets.folder(snippet.slug)).mkdir(parents=True)
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


# ---- the labelled meetings (meetings.json) -----------------------------------------------------

MEETINGS = Path(__file__).with_name("meetings.json")
LINE_GAP_S = 2.0  # a pause between lines: each line is its own transcript segment


def labelled() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MEETINGS.read_text())
    return data


@dataclass(frozen=True)
class Line:
    slug: str
    start_ms: int
    end_ms: int
    text: str


async def indexed_meetings(world: World, which: Sequence[int] | None = None) -> dict[Key, Line]:
    """The labelled meetings (all, or those numbered in `which`) as published conversations,
    their transcripts built and indexed by the node's own jobs. Returns where each line is."""
    data = labelled()
    people: dict[str, Person] = {}
    lines: dict[Key, Line] = {}
    hosts: dict[str, Person] = {}
    for mi, meeting in enumerate(data["meetings"]):
        if which is not None and mi not in which:
            continue
        for key, name in meeting["speakers"].items():
            if key not in people:
                people[key] = await world.member(f"m{key}", name)
        host = people[meeting["lines"][0][0]]
        conv = await world.ended_conversation(host, title=meeting["title"], tags=meeting["tags"])
        hosts[conv.slug] = host
        words: dict[str, list[list[Any]]] = {k: [] for k in meeting["speakers"]}
        at = 0.0
        for li, (who, text, *_) in enumerate(meeting["lines"]):
            words[who] += words_at(at, text)
            end = at + len(text.split()) * 0.4
            lines[(mi, li)] = Line(conv.slug, int(at * 1000), int(end * 1000), text)
            at = end + LINE_GAP_S
        for key, said in words.items():
            if people[key] is not host:
                await world.add_participant(conv, people[key], Role.SPEAKER)
            await world.add_piece(conv, people[key], 0.0, said)
    assert await world.run_jobs("transcript.build") == len(hosts)
    assert await world.run_jobs("search.index") == len(hosts)
    for slug, host in hosts.items():
        answer = await host.post(f"/api/conversations/{slug}/publish")
        assert answer.status_code == 200, answer.text
    return lines


def line_of(hit: dict[str, Any], lines: dict[Key, Line]) -> Key | None:
    """Which labelled line a search hit is (its moment lies within the line)."""
    for key, line in lines.items():
        if line.slug == hit["conversation"] and line.start_ms <= hit["start_ms"] <= line.end_ms:
            return key
    return None
