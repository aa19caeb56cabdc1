"""Review: the captions of a conversation under review (ended, unpublished) reach its reviewers
only, on every path that hands out room events: the REST stream, a WebSocket replay, and live
delivery to sockets still open after the end. The page, the captions file and the transcript
already answer 404 to everyone else; the room stream must not be a way around that."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, update
from ws_support import Client, create_conversation, in_room

from conftest import LiveNode, free_port
from helpers import Person, csrf_headers, eventually, signup
from junto.app import build_app
from junto.config import Settings
from junto.events import log as room_log
from junto.node import Node
from junto.storage.tables import Caption, Conversation, User

TIMEOUT = 10.0


@dataclass
class Served:
    """A node served by uvicorn in the test's own event loop: real HTTP and WebSockets, and
    the node's services at hand (to deliver a caption exactly as the caption worker does)."""

    node: Node
    live: LiveNode
    people: list[Person]

    async def person(self, name: str, *, admin: bool = False) -> Person:
        http = httpx.AsyncClient(base_url=self.live.url, timeout=TIMEOUT)
        me = await signup(http, name, display_name=name.title())
        if admin:
            async with self.node.db() as db:
                await db.execute(update(User).where(User.id == me["id"]).values(is_admin=True))
                await db.commit()
        self.people.append(person := Person(http, me))
        return person

    def watcher(self) -> Person:
        self.people.append(person := Person(httpx.AsyncClient(base_url=self.live.url), {}))
        return person

    async def conversation_id(self, slug: str) -> int:
        async with self.node.db() as db:
            conv_id = await db.scalar(select(Conversation.id).where(Conversation.slug == slug))
            assert conv_id is not None
            return int(conv_id)

    async def say(self, slug: str, speaker: Person, text: str) -> int:
        """A final caption, stored and delivered as junto.speech.live does it; its event id."""
        conv_id = await self.conversation_id(slug)
        who = {"id": speaker.id, "name": "Speaker", "colour": "#000000", "is_guest": False}
        data = {"user": who, "text": text, "start_ms": 1000, "end_ms": 2000}
        async with self.node.db() as db:
            event = await room_log.append(db, conv_id, "caption", data, speaker.id)
            db.add(
                Caption(
                    conversation_id=conv_id,
                    user_id=speaker.id,
                    start_ms=1000,
                    end_ms=2000,
                    text=text,
                )
            )
            await db.commit()
        assert self.node.hub is not None
        await self.node.hub.deliver(event)
        return event.id


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    app = build_app(
        settings.with_overrides(captions=False, recording=False, workers=0, media_backend="none")
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            pytest.fail("the server stopped while starting")
        return server.started

    await eventually(started, 60, what="the server to start")
    served = Served(app.state.node, LiveNode(settings.data_dir, port, {}), [])
    try:
        yield served
    finally:
        for person in served.people:
            await person.client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def act(person: Person, path: str, body: Any = None) -> httpx.Response:
    headers = await csrf_headers(person.client)
    if body is None:
        response = await person.client.post(path, headers=headers)
    else:
        response = await person.client.put(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def said(frames: list[dict[str, Any]]) -> list[str]:
    """The caption texts among the frames."""
    return [f["data"]["text"] for f in frames if f.get("type") == "caption"]


async def replay(served: Served, slug: str, person: Person) -> list[dict[str, Any]]:
    """Every room event a new socket resuming from 0 gets, up to the stream's end."""
    last = await room_log_last(served, slug)
    async with in_room(served.live, slug, person, resume_from=0) as client:
        await client.wait_event(last)
        events = client.room_events()
    assert [e["id"] for e in events] == list(range(1, last + 1)), "ids must stay dense"
    return events


async def room_log_last(served: Served, slug: str) -> int:
    async with served.node.db() as db:
        return await room_log.last_id(db, await served.conversation_id(slug))


async def rest_events(person: Person, slug: str) -> list[dict[str, Any]]:
    response = await person.client.get(f"/api/conversations/{slug}/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1)), "ids must stay dense"
    return events


async def withheld_at(client: Client, event_id: int) -> dict[str, Any]:
    frame = await client.wait_event(event_id)
    assert frame["type"] == "withheld" and frame["data"] == {}, frame
    return frame


async def test_captions_after_the_end_reach_reviewers_only(served: Served) -> None:
    host = await served.person("hostess")
    speaker = await served.person("spea")
    audience = await served.person("ana")
    admin = await served.person("root", admin=True)
    watcher = served.watcher()
    slug = await create_conversation(host)
    await act(
        host, f"/api/conversations/{slug}/participants/{speaker.id}/role", {"role": "speaker"}
    )
    async with (
        in_room(served.live, slug, host) as host_ws,
        in_room(served.live, slug, speaker) as speaker_ws,
        in_room(served.live, slug, watcher) as watcher_ws,
    ):
        # While live, the live audience sees captions as they come.
        live_id = await served.say(slug, speaker, "while we are live")
        assert (await watcher_ws.wait_event(live_id))["data"]["text"] == "while we are live"

        ended = (await act(host, f"/api/conversations/{slug}/end")).json()
        assert ended["state"] == "ended"
        # The caption of a last utterance lands after the end: reviewers only.
        late_id = await served.say(slug, speaker, "a private afterthought")
        await withheld_at(watcher_ws, late_id)
        assert (await host_ws.wait_event(late_id))["data"]["text"] == "a private afterthought"
        assert (await speaker_ws.wait_event(late_id))["type"] == "caption"

        # A speaker sent back to the audience stops reviewing, on the socket they have open.
        await act(
            host, f"/api/conversations/{slug}/participants/{speaker.id}/role", {"role": "audience"}
        )
        later_id = await served.say(slug, speaker, "another afterthought")
        await withheld_at(speaker_ws, later_id)
        assert (await host_ws.wait_event(later_id))["type"] == "caption"
        assert "another afterthought" not in str(watcher_ws.frames + speaker_ws.frames)

    # Replays from the start, as a page that reconnects would ask.
    for outsider in (watcher, audience, speaker):
        events = await replay(served, slug, outsider)
        assert said(events) == []
        assert "afterthought" not in str(events) and "while we are live" not in str(events)
    for reviewer in (host, admin):
        events = await replay(served, slug, reviewer)
        assert said(events) == [
            "while we are live",
            "a private afterthought",
            "another afterthought",
        ]
    # The other paths to the same words agree.
    assert (await watcher.client.get(f"/c/{slug}/captions.vtt")).status_code == 404


async def test_the_rest_stream_follows_publishing_and_unpublishing(served: Served) -> None:
    host = await served.person("hostess")
    speaker = await served.person("spea")
    watcher = served.watcher()
    slug = await create_conversation(host)
    await act(
        host, f"/api/conversations/{slug}/participants/{speaker.id}/role", {"role": "speaker"}
    )
    await served.say(slug, speaker, "the first thing said")
    assert said(await rest_events(watcher, slug)) == ["the first thing said"]  # live

    await act(host, f"/api/conversations/{slug}/end")
    await served.say(slug, speaker, "a late word")
    under_review = await rest_events(watcher, slug)
    assert said(under_review) == [] and "said" not in str(under_review)
    assert [e["type"] for e in under_review].count("withheld") == 2
    assert said(await rest_events(speaker, slug)) == ["the first thing said", "a late word"]
    assert said(await replay(served, slug, watcher)) == []

    await act(host, f"/api/conversations/{slug}/publish")
    assert said(await rest_events(watcher, slug)) == ["the first thing said", "a late word"]
    assert said(await replay(served, slug, watcher)) == ["the first thing said", "a late word"]

    await act(host, f"/api/conversations/{slug}/unpublish")
    assert said(await rest_events(watcher, slug)) == []
    assert said(await replay(served, slug, watcher)) == []
    assert said(await rest_events(host, slug)) == ["the first thing said", "a late word"]
