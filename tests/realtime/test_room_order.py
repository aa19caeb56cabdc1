"""In-order, gapless fan-out in one process (the real hub, database and pub/sub of a node).

Events reach a room through pub/sub in whatever order their publishers' messages arrive; these
tests publish stored events out of order, twice, or never, as several node processes (or a
crashed one) would, and check what a connection is handed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from room_support import Room, open_room

from helpers import eventually
from junto.config import Settings
from junto.events import log as eventlog
from junto.events.log import StoredEvent
from junto.pubsub.base import SubscriptionOverflow
from junto.pubsub.local import LocalSubscription
from junto.realtime.connection import Connection
from junto.realtime.hub import Hub
from junto.realtime.presence import Present
from junto.realtime.room import GAP_WAIT_SECONDS, room_channel, wire


class Sink:
    """The sending half of a WebSocket, recording frames; `stalled` stops it like a client
    that stopped reading (the socket buffer is full)."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.stalled = False
        self._arrived = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        while self.stalled:
            await asyncio.sleep(3600)
        self.frames.append(orjson.loads(message["text"]))
        self._arrived.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = code

    def room_ids(self) -> list[int]:
        return [f["id"] for f in self.frames if f.get("stream") == "room"]

    async def wait_ids(self, expected: list[int], timeout: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while self.room_ids() != expected:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            got = self.room_ids()
            raise AssertionError(
                f"expected ids {expected[:5]}…({len(expected)}), got "
                f"{got[:5]}…{got[-5:]} ({len(got)})"
            ) from None


@pytest.fixture
async def conv_room(settings: Settings) -> Room:  # type: ignore[misc]
    async for value in open_room(settings):
        yield value


def hub_of(room: Room) -> Hub:
    assert room.node.hub is not None
    return room.node.hub


async def connect(room: Room, person: Present | None = None) -> tuple[Connection, Sink]:
    sink = Sink()
    conn = Connection(sink, max_queue=room.node.settings.limits.send_queue_max)  # type: ignore[arg-type]
    await hub_of(room).join(room.conv.id, conn, person)
    conn.skip_upto = await room.last_seq()
    conn.start_writer()
    return conn, sink


async def store(room: Room, count: int) -> list[StoredEvent]:
    async with room.node.db() as db:
        events = [
            await eventlog.append(
                db, room.conv.id, "chat.deleted", {"message_id": n, "by": 1}, None
            )
            for n in range(count)
        ]
        await db.commit()
    return events


async def publish(room: Room, event: StoredEvent) -> None:
    await room.node.pubsub.publish(room_channel(room.conv.id), wire(event))


async def test_out_of_order_arrivals_are_handed_on_in_id_order(conv_room: Room) -> None:
    _, sink = await connect(conv_room)
    e1, e2, e3 = await store(conv_room, 3)
    await publish(conv_room, e3)
    await publish(conv_room, e2)
    await asyncio.sleep(0.05)
    assert sink.room_ids() == [], "nothing may jump ahead of a missing event"
    await publish(conv_room, e1)
    await sink.wait_ids([e1.id, e2.id, e3.id])
    # A repeated publish is not repeated to clients.
    await publish(conv_room, e2)
    await hub_of(conv_room).deliver(e3)
    (e4,) = await store(conv_room, 1)
    await hub_of(conv_room).deliver(e4)
    await sink.wait_ids([e1.id, e2.id, e3.id, e4.id])
    assert next(f for f in sink.frames if f.get("stream") == "room")["data"] == e1.data


async def test_a_gap_nobody_fills_is_read_from_the_database(conv_room: Room) -> None:
    _, sink = await connect(conv_room)
    lost, e2, e3 = await store(conv_room, 3)
    # The process that stored `lost` died before publishing it.
    await publish(conv_room, e3)
    await publish(conv_room, e2)
    started = asyncio.get_running_loop().time()
    await sink.wait_ids([lost.id, e2.id, e3.id], timeout=GAP_WAIT_SECONDS + 3)
    assert asyncio.get_running_loop().time() - started >= GAP_WAIT_SECONDS * 0.9


async def test_every_connection_gets_the_same_frame_object(conv_room: Room) -> None:
    conns = [await connect(conv_room) for _ in range(3)]
    (event,) = await store(conv_room, 1)
    await hub_of(conv_room).deliver(event)
    for _, sink in conns:
        await sink.wait_ids([event.id])
    # Fan-out shares one serialised message among all queues (no per-client encoding).
    e2, e3 = await store(conv_room, 2)
    for _, sink in conns:
        sink.stalled = True
    # The writers take e2 and block sending it; e3 stays queued.
    await hub_of(conv_room).deliver(e2)
    await hub_of(conv_room).deliver(e3)

    def only_e3_queued() -> bool:
        queued = [item[1] for conn, _ in conns for item in conn._queue]
        assert len(queued) >= 1 and all(q is queued[0] for q in queued), queued
        return True

    await eventually(only_e3_queued, 2, every=0.01)


async def test_a_stalled_connection_is_cut_off_and_the_others_carry_on(conv_room: Room) -> None:
    slow, slow_sink = await connect(conv_room)
    _, fast_sink = await connect(conv_room)
    slow_sink.stalled = True
    limit = slow.max_queue
    events = await store(conv_room, limit + 5)
    for event in events:
        await hub_of(conv_room).deliver(event)
    await fast_sink.wait_ids([e.id for e in events])
    assert slow.closed and slow.close_code == 4008
    await eventually(lambda: slow_sink.closed_with == 4008, 2, every=0.01)
    assert hub_of(conv_room).rooms[conv_room.conv.id].connection_count == 1


async def test_stage_events_update_presence(conv_room: Room) -> None:
    ana = Present(id=42, name="Ana", colour="#123456", is_guest=False)
    _, sink = await connect(conv_room, ana)
    room = hub_of(conv_room).rooms[conv_room.conv.id]
    async with conv_room.node.db() as db:
        person = {"id": 42, "name": "Ana", "colour": "#123456", "is_guest": False}
        cid = conv_room.conv.id
        hand = await eventlog.append(db, cid, "stage.hand", {"user": person, "raised": True}, None)
        role = await eventlog.append(
            db, cid, "stage.role", {"user": person, "role": "speaker", "by": 1}, None
        )
        await db.commit()
    await hub_of(conv_room).deliver(hand)
    await sink.wait_ids([hand.id])
    await eventually(lambda: room.view.picture()["hands"] == 1, 3)
    await hub_of(conv_room).deliver(role)
    await sink.wait_ids([hand.id, role.id])

    def on_stage_and_told() -> dict[str, Any]:
        picture = room.view.picture()
        assert picture["on_stage"] == 1 and picture["hands"] == 0, picture
        presence = [f for f in sink.frames if f.get("type") == "presence.state"]
        assert presence and presence[-1]["data"]["on_stage"] == 1, presence[-1:]
        return picture

    picture = await eventually(on_stage_and_told, 3)
    assert picture["members"][0]["role"] == "speaker"
    assert hub_of(conv_room).counts(conv_room.conv.id) == (1, 1)


async def test_a_room_cut_off_by_pub_sub_catches_up_from_the_database(conv_room: Room) -> None:
    _, sink = await connect(conv_room)
    room = hub_of(conv_room).rooms[conv_room.conv.id]
    (before,) = await store(conv_room, 1)
    await publish(conv_room, before)
    await sink.wait_ids([before.id])
    # As when the Redis connection drops: the subscription is cut off, and what is published
    # until the room has subscribed again is lost to it.
    cut_off = next(s for s in room._subs if s.channel == room_channel(conv_room.conv.id))
    assert isinstance(cut_off, LocalSubscription)  # the node's in-process broker in this test
    cut_off.fail(SubscriptionOverflow("the connection to Redis dropped"))
    missed = await store(conv_room, 3)
    for event in missed:
        await publish(conv_room, event)
    await sink.wait_ids([before.id, *(e.id for e in missed)])
    # And it is subscribed again.
    (after,) = await store(conv_room, 1)
    await publish(conv_room, after)
    await sink.wait_ids([before.id, *(e.id for e in missed), after.id])
