"""The durable room stream (junto.events.log) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest
from room_support import Room, open_room

from junto.config import Settings
from junto.events import log as eventlog


@pytest.fixture
async def conv_room(settings: Settings) -> Room:  # type: ignore[misc]
    async for value in open_room(settings):
        yield value


async def test_append_then_read_back_as_protocol_frames(conv_room: Room) -> None:
    node, cid = conv_room.node, conv_room.conv.id
    start = await conv_room.last_seq()
    async with node.db() as db:
        first = await eventlog.append(db, cid, "chat.deleted", {"message_id": 7, "by": 1}, None)
        second = await eventlog.append(db, cid, "room.settings", {"slow_mode_seconds": 5}, None)
        await db.commit()
    assert (first.id, second.id) == (start + 1, start + 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.ts)
    frame = orjson.loads(first.frame())
    assert frame == {"type": "chat.deleted", "stream": "room", "id": start + 1, "ts": first.ts,
                     "data": {"message_id": 7, "by": 1}}  # fmt: skip
    assert first.frame() is first.frame(), "a frame is serialised once"
    async with node.db() as db:
        back = await eventlog.events_after(db, cid, start, 10)
        assert await eventlog.last_id(db, cid) == start + 2
        assert await eventlog.events_after(db, cid, start + 1, 1) == [back[1]]
    assert back == [first, second]
    assert [e.frame() for e in back] == [first.frame(), second.frame()]


async def test_a_rolled_back_append_gives_its_id_back(conv_room: Room) -> None:
    node, cid = conv_room.node, conv_room.conv.id
    start = await conv_room.last_seq()
    async with node.db() as db:
        lost = await eventlog.append(db, cid, "chat.deleted", {"message_id": 1, "by": 1}, None)
        await db.rollback()
    async with node.db() as db:
        kept = await eventlog.append(db, cid, "chat.deleted", {"message_id": 2, "by": 1}, None)
        await db.commit()
    assert lost.id == kept.id == start + 1
    async with node.db() as db:
        assert [e.data["message_id"] for e in await eventlog.events_after(db, cid, start, 5)] == [2]


async def test_unknown_conversation_is_refused(conv_room: Room) -> None:
    async with conv_room.node.db() as db:
        with pytest.raises(LookupError, match="expected an existing conversation"):
            await eventlog.append(db, 999_999, "chat.deleted", {}, None)
        assert await eventlog.last_id(db, 999_999) == -1


async def test_concurrent_appends_get_dense_unique_ids(conv_room: Room) -> None:
    node, cid = conv_room.node, conv_room.conv.id
    start = await conv_room.last_seq()

    async def one(n: int) -> int:
        async with node.db() as db:
            event = await eventlog.append(db, cid, "chat.deleted", {"message_id": n, "by": 1}, None)
            await db.commit()
            return event.id

    ids = await asyncio.gather(*(one(n) for n in range(25)))
    assert sorted(ids) == list(range(start + 1, start + 26))
    async with node.db() as db:
        stored = await eventlog.events_after(db, cid, start, 100)
    assert [e.id for e in stored] == sorted(ids)
    # Each id holds the event of the task that was handed that id.
    assert {e.id: e.data["message_id"] for e in stored} == {i: n for n, i in enumerate(ids)}


async def test_commit_order_is_id_order(conv_room: Room) -> None:
    """A second writer waits for the first one's commit, so once event n is visible every
    event below n is visible too (the hub's gap filling relies on it)."""
    node, cid = conv_room.node, conv_room.conv.id
    order: list[str] = []
    first_appended = asyncio.Event()

    async def slow_first() -> int:
        async with node.db() as db:
            event = await eventlog.append(db, cid, "chat.deleted", {"message_id": 1, "by": 1}, None)
            first_appended.set()
            await asyncio.sleep(0.5)
            order.append("first commits")
            await db.commit()
            return event.id

    async def second() -> int:
        await first_appended.wait()
        async with node.db() as db:
            event = await eventlog.append(db, cid, "chat.deleted", {"message_id": 2, "by": 1}, None)
            order.append("second allocated")
            await db.commit()
            return event.id

    a, b = await asyncio.gather(slow_first(), second())
    assert b == a + 1
    assert order == ["first commits", "second allocated"]
