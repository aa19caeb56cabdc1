"""Who is on air: a speaker's source counts only while it is published in a live conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import orjson
import pytest

from helpers import csrf_headers, eventually, in_process_node, signup
from junto.config import Settings
from junto.conversations import get_by_slug
from junto.media.base import Publication
from junto.node import Node
from junto.recording.on_air import OnAir
from junto.storage.tables import Conversation


class Calls:
    """An OnAirConsumer that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int, str, datetime | None]] = []
        self.gathered: list[int] = []

    def on_air(self, room: int, user_id: int, source: str, started_at: datetime) -> None:
        self.seen.append(("on", room, user_id, source, started_at))

    def off_air(self, room: int, user_id: int, source: str) -> None:
        self.seen.append(("off", room, user_id, source, None))

    def gathering(self, room: int) -> None:
        self.gathered.append(room)


@pytest.fixture
async def node_and_client(settings: Settings) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    async with in_process_node(settings.with_overrides(recording=False, captions=False)) as running:
        yield running


async def conversation(
    node: Node, client: httpx.AsyncClient, title: str, live: bool
) -> Conversation:
    headers = await csrf_headers(client)
    r = await client.post("/api/conversations", json={"title": title}, headers=headers)
    assert r.status_code == 201, r.text
    slug = r.json()["slug"]
    if live:
        r = await client.post(f"/api/conversations/{slug}/start", headers=headers)
        assert r.status_code == 200, r.text
    async with node.db() as db:
        conv = await get_by_slug(db, slug)
    assert conv is not None
    return conv


def pub(user_id: int, source: str = "camera") -> Publication:
    return Publication(user_id, source, has_audio=True, has_video=source == "camera")


async def settle(calls: Calls, count: int) -> None:
    def called() -> bool:
        assert len(calls.seen) >= count, f"expected {count} calls, got {calls.seen}"
        return True

    await eventually(called, 2)


async def test_sources_go_on_and_off_air_with_publications_and_the_conversation(
    node_and_client: tuple[Node, httpx.AsyncClient],
) -> None:
    node, client = node_and_client
    assert isinstance(node.on_air, OnAir)
    calls = Calls()
    node.on_air.add(calls)
    me = await signup(client, "onair_host")
    uid = int(me["id"])
    live = await conversation(node, client, "Live now", live=True)
    room = live.id

    node.on_air.publications_changed(room, [pub(uid)])
    await settle(calls, 1)
    kind, _, who, source, started = calls.seen[0]
    assert (kind, who, source) == ("on", uid, "camera")
    assert started == live.started_at

    node.on_air.publications_changed(room, [pub(uid), pub(uid, "screen")])
    node.on_air.publications_changed(room, [pub(uid, "screen")])
    assert [c[0] + ":" + c[3] for c in calls.seen[1:]] == ["on:screen", "off:camera"]

    ended = orjson.dumps({"type": "conversation.state", "data": {"state": "ended"}})
    node.on_air.on_room_event(room, "conversation.state", ended)
    assert calls.seen[-1][:4] == ("off", room, uid, "screen")
    assert node.on_air.on_air_now(room) == set()


async def test_a_green_room_is_not_on_air_until_the_conversation_goes_live(
    node_and_client: tuple[Node, httpx.AsyncClient],
) -> None:
    node, client = node_and_client
    assert node.on_air is not None
    calls = Calls()
    node.on_air.add(calls)
    me = await signup(client, "green_host")
    uid = int(me["id"])
    scheduled = await conversation(node, client, "Later", live=False)
    room = scheduled.id

    node.on_air.publications_changed(room, [pub(uid)])
    assert calls.gathered == [room]  # told at once: a consumer may warm up before live
    await asyncio.sleep(0.2)  # the state lookup runs
    assert calls.seen == []
    node.on_air.publications_changed(room, [pub(uid), pub(uid, "screen")])
    node.on_air.publications_changed(room, [pub(uid)])
    assert calls.gathered == [room]  # once per gathering, not per publication

    went_live = orjson.dumps({"data": {"state": "live", "started_at": "2026-11-26T10:00:00.000Z"}})
    node.on_air.on_room_event(room, "conversation.state", went_live)
    assert [c[:4] for c in calls.seen] == [("on", room, uid, "camera")]
    assert calls.seen[0][4] == datetime.fromisoformat("2026-11-26T10:00:00+00:00")
    # Other room events change nothing.
    node.on_air.on_room_event(room, "chat.message", b"{}")
    node.on_air.publications_changed(room, [])
    assert [c[0] for c in calls.seen] == ["on", "off"]


async def test_a_conversation_going_live_before_anyone_is_on_stage_warms_the_consumers(
    node_and_client: tuple[Node, httpx.AsyncClient],
) -> None:
    """A host who starts the conversation and then brings speakers up: the caption worker
    starts loading at "go live", not when the first speaker already talks."""
    node, client = node_and_client
    assert node.on_air is not None
    calls = Calls()
    node.on_air.add(calls)
    await signup(client, "early_host")
    room = (await conversation(node, client, "Straight on", live=False)).id

    went_live = orjson.dumps({"data": {"state": "live", "started_at": "2026-12-08T10:00:00.000Z"}})
    node.on_air.on_room_event(room, "conversation.state", went_live)
    assert calls.gathered == [room]
    assert calls.seen == []  # nobody is on air yet
