"""Reliability of the room stream: resuming, restarts, bad input, slow clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from ws_support import LiveRoom, in_room, live_room

from conftest import LiveNode, make_live_node
from junto.events import log as eventlog
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import Conversation


@pytest.fixture
async def room(live_node: LiveNode) -> AsyncIterator[LiveRoom]:
    """A live node with a signed-up host and a live public conversation."""
    async with live_room(live_node) as r:
        yield r


async def append_behind_the_nodes_back(
    node: LiveNode, slug: str, count: int, body_chars: int = 10
) -> int:
    """Store `count` chat events straight into the node's SQLite database (as a node process
    that crashed right after committing would have); returns the last id."""
    engine = make_engine(f"sqlite+aiosqlite:///{node.data_dir / 'junto.sqlite3'}")
    try:
        async with make_sessionmaker(engine)() as db:
            conv = (
                await db.execute(select(Conversation).where(Conversation.slug == slug))
            ).scalar_one()
            event = None
            for n in range(count):
                # Random text: permessage-deflate must not shrink it away.
                body = base64.b64encode(os.urandom(body_chars))[:body_chars].decode()
                event = await eventlog.append(
                    db, conv.id, "chat.message", _fake_message(n, body), None
                )
            await db.commit()
            assert event is not None
            return event.id
    finally:
        await engine.dispose()


def _fake_message(n: int, body: str) -> dict[str, Any]:
    author = {"id": 1, "name": "Hostess", "colour": "#1f5fbf", "is_guest": False}
    return {"message": {"id": 100_000 + n, "author": author, "body": body,
                        "created_at": "2026-11-26T09:30:00.000Z", "edited_at": None}}  # fmt: skip


async def test_resume_after_a_dropped_connection_gets_exactly_the_missed_events(
    room: LiveRoom,
) -> None:
    ana, bob = await room.member("ana"), await room.member("bob")
    async with in_room(room.node, room.slug, bob) as poster:
        await poster.wait_type("snapshot")
        stop = asyncio.Event()
        posted: list[int] = []

        async def keep_posting() -> None:
            n = 0
            while not stop.is_set():
                answer = await poster.act(f"p{n}", type="backchannel.post", body=f"post {n}")
                if answer["type"] == "ack":
                    posted.append(answer["id"])
                else:  # rate limited: the point is only to keep events flowing
                    await asyncio.sleep(float(answer.get("retry_after") or 0.2))
                n += 1
                await asyncio.sleep(0.05)

        posting = asyncio.create_task(keep_posting())
        try:
            async with in_room(room.node, room.slug, ana) as first:
                snapshot = await first.wait_type("snapshot")
                await asyncio.sleep(1.0)
                seen = [snapshot["last_id"], *first.room_ids()]
                last_seen = max(seen)
            # The connection dropped (closed without a goodbye); events keep coming meanwhile.
            await asyncio.sleep(1.5)
            async with in_room(room.node, room.slug, ana, resume_from=last_seen) as second:
                assert second.frames[-1]["resume"] == "replay"
                await asyncio.sleep(1.5)
                stop.set()
                await posting
                final = posted[-1]
                await second.wait_event(final)
                ids = second.room_ids()
        finally:
            stop.set()
            await posting
    # Exactly the events after last_seen: none lost, none repeated, in order.
    assert ids == list(range(last_seen + 1, final + 1))
    assert len(posted) >= 4, "the test should have posted while ana was away"


async def test_resume_too_far_behind_or_ahead_gets_a_snapshot(room: LiveRoom) -> None:
    ana = await room.member("ana")
    async with in_room(room.node, room.slug, ana) as client:
        start = (await client.wait_type("snapshot"))["last_id"]
    last = await append_behind_the_nodes_back(room.node, room.slug, 1001)
    async with in_room(room.node, room.slug, ana, resume_from=start) as client:
        assert client.frames[-1]["resume"] == "snapshot"
        snapshot = await client.wait_type("snapshot")
        assert snapshot["last_id"] == last
    # 1000 missed events is still a replay.
    async with in_room(room.node, room.slug, ana, resume_from=start + 1) as client:
        assert client.frames[-1]["resume"] == "replay"
        await client.wait_event(last)
        assert client.room_ids() == list(range(start + 2, last + 1))
    async with in_room(room.node, room.slug, ana, resume_from=last + 5) as client:
        assert client.frames[-1]["resume"] == "snapshot"
        error = await client.wait_type("error")
        assert error["code"] == "bad_resume"
        assert (await client.wait_type("snapshot"))["last_id"] == last


async def test_watchers_joining_together_share_a_snapshot_yet_miss_nothing(
    room: LiveRoom,
) -> None:
    ana = await room.member("ana")
    async with in_room(room.node, room.slug, ana) as poster:
        await poster.wait_type("snapshot")
        first = await poster.act("1", type="chat.send", body="before everyone")
        async with in_room(room.node, room.slug) as w1, in_room(room.node, room.slug) as w2:
            s1, s2 = await w1.wait_type("snapshot"), await w2.wait_type("snapshot")
            assert s1["last_id"] == s2["last_id"] == first["id"]
            assert [m["body"] for m in s2["chat"]] == ["before everyone"]
            second = await poster.act("2", type="chat.send", body="after the first two")
            await w1.wait_event(second["id"])
            # A watcher arriving now must not get the old snapshot.
            async with in_room(room.node, room.slug) as w3:
                s3 = await w3.wait_type("snapshot")
                assert s3["last_id"] == second["id"]
                assert [m["body"] for m in s3["chat"]][-1] == "after the first two"
                third = await poster.act("3", type="chat.send", body="live")
                for w in (w1, w2, w3):
                    await w.wait_event(third["id"])
            assert w2.room_ids() == [second["id"], third["id"]]


async def test_restarting_the_node_keeps_history(room: LiveRoom) -> None:
    ana = await room.member("ana")
    async with in_room(room.node, room.slug, ana) as client:
        await client.wait_type("snapshot")
        chat = await client.act("c", type="chat.send", body="remember me")
        post = await client.act("b", type="backchannel.post", body="#memory matters")
        await client.wait_event(post["id"])
        before = [f for f in client.room_events()]
    room.node.restart()
    async with in_room(room.node, room.slug, ana, resume_from=0) as client:
        assert client.frames[-1]["resume"] == "replay"
        await client.wait_event(post["id"])
        replayed = client.room_events()
        assert [f["id"] for f in replayed] == list(range(1, post["id"] + 1))
        assert [f for f in replayed if f["id"] >= chat["id"]] == before
    async with in_room(room.node, room.slug) as client:
        snapshot = await client.wait_type("snapshot")
        assert [m["body"] for m in snapshot["chat"]] == ["remember me"]
        assert [p["body"] for p in snapshot["backchannel"]] == ["#memory matters"]
    # And the stream continues from where it was.
    async with in_room(room.node, room.slug, ana) as client:
        await client.wait_type("snapshot")
        after = await client.act("after", type="chat.send", body="back again")
        assert after["id"] == post["id"] + 1


async def test_bad_frames_get_errors_and_the_connection_stays_usable(room: LiveRoom) -> None:
    ana = await room.member("ana")
    async with in_room(room.node, room.slug, ana) as client:
        await client.wait_type("snapshot")
        await client.ws.send("{this is not json")
        assert (await client.wait_type("error"))["code"] == "bad_message"
        await client.ws.send(json.dumps({"type": "chat.send", "body": "x" * 20_000}))
        assert (await client.wait_type("error"))["code"] == "too_large"
        await client.ws.send(b"\x00binary")
        assert (await client.wait_type("error"))["code"] == "bad_message"
        answer = await client.act("u", type="teleport", to="mars")
        assert answer["type"] == "error" and answer["code"] == "bad_message"
        answer = await client.act("m", type="chat.send")
        assert answer["type"] == "error" and answer["code"] == "bad_message"
        # A host action from a member of the audience.
        answer = await client.act("h", type="room.settings", slow_mode_seconds=30)
        assert answer["type"] == "error" and answer["code"] == "forbidden"
        answer = await client.act("s", type="stage.invite", user_id=ana.id)
        assert answer["type"] == "error" and answer["code"] == "forbidden"
        # Still usable.
        await client.send(type="ping")
        await client.wait_type("pong")
        ok = await client.act("ok", type="chat.send", body="still here")
        assert ok["type"] == "ack"
        event = await client.wait_event(ok["id"])
        assert event["data"]["message"]["body"] == "still here"


async def test_a_slow_client_is_closed_with_4008_and_others_keep_receiving(
    tmp_path: Path,
) -> None:
    node = make_live_node(tmp_path / "slow")
    node.start()
    try:
        async with live_room(node) as r:
            ana = await r.member("ana")
            # A client that stops reading: a tiny receive buffer and a one-message queue, so the
            # server's socket fills up and its send queue for this client grows.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", node.port))
            sock.setblocking(False)
            async with (
                in_room(node, r.slug, max_queue=1, sock=sock, ping_interval=None) as slow,
                in_room(node, r.slug, ana) as fast,
            ):
                start = (await fast.wait_type("snapshot"))["last_id"]
                await slow.wait_type("snapshot")
                # Far more than the send queue (1000 frames) plus every socket buffer holds. The
                # room's periodic tail check finds these events (nobody published them).
                last = await append_behind_the_nodes_back(node, r.slug, 2500, body_chars=20_000)
                await fast.wait_event(last, timeout=30)
                assert fast.room_ids()[-(last - start) :] == list(range(start + 1, last + 1))
                # The fast client still gets new events promptly.
                sent = time.monotonic()
                ack = await fast.act("a", type="chat.send", body="still flowing")
                await fast.wait_event(ack["id"])
                assert time.monotonic() - sent < 3.0
                # The slow one, once it reads again, finds itself closed as too slow.
                assert await slow.close_code(timeout=30) == 4008
                assert len(slow.room_events()) < last - start
    finally:
        node.stop()
