"""The room WebSocket end to end: a real node process, real clients, real frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ws_support import LiveRoom, in_room, live_room, open_ws

from conftest import LiveNode, make_live_node


@pytest.fixture
async def room(live_node: LiveNode) -> AsyncIterator[LiveRoom]:
    """A live node with a signed-up host and a live public conversation."""
    async with live_room(live_node) as r:
        yield r


async def test_hello_gets_welcome_then_snapshot_then_presence(room: LiveRoom) -> None:
    ana = await room.member("ana")
    async with in_room(room.node, room.slug, ana) as client:
        welcome = client.frames[-1]
        assert welcome["resume"] == "snapshot"
        assert welcome["conversation"]["slug"] == room.slug
        assert welcome["conversation"]["state"] == "live"
        you = welcome["you"]
        assert you["user_id"] == ana.id and you["name"] == "ana" and you["can_post"] is True
        assert you["role"] == "audience" and you["can_moderate"] is False
        assert welcome["heartbeat_seconds"] > 0
        snapshot = await client.wait_type("snapshot")
        # Starting the conversation was the first event of its room stream.
        assert snapshot["last_id"] >= 1
        assert snapshot["chat"] == [] and snapshot["backchannel"] == []
        presence = await client.wait_type("presence.state")
        assert presence["stream"] == "presence" and isinstance(presence["id"], int)
        assert presence["data"]["present"] >= 1


async def test_two_people_see_each_others_chat_in_order(room: LiveRoom) -> None:
    ana, bo = await room.member("ana"), await room.member("bob")
    async with in_room(room.node, room.slug, ana) as a, in_room(room.node, room.slug, bo) as b:
        await a.wait_type("snapshot")
        await b.wait_type("snapshot")
        ack = await a.act("a1", type="chat.send", body="hello from ana")
        assert ack["type"] == "ack" and isinstance(ack["id"], int)
        ack_b = await b.act("b1", type="chat.send", body="and hello from bob")
        assert ack_b["type"] == "ack" and ack_b["id"] == ack["id"] + 1
        for client in (a, b):
            first = await client.wait_event(ack["id"])
            second = await client.wait_event(ack_b["id"])
            assert first["type"] == "chat.message" and first["stream"] == "room"
            assert first["data"]["message"]["body"] == "hello from ana"
            assert first["data"]["message"]["author"]["id"] == ana.id
            assert second["data"]["message"]["body"] == "and hello from bob"
            assert first["ts"].endswith("Z")


async def test_watcher_reads_but_cannot_post(room: LiveRoom) -> None:
    ana = await room.member("ana")
    async with in_room(room.node, room.slug, ana) as a, in_room(room.node, room.slug) as w:
        assert w.frames[-1]["you"]["user_id"] is None
        assert w.frames[-1]["you"]["can_post"] is False
        refused = await w.act("w1", type="chat.send", body="let me in")
        assert refused["type"] == "error" and refused["code"] == "not_signed_in"
        ack = await a.act("a1", type="chat.send", body="watchers read this")
        event = await w.wait_event(ack["id"])
        assert event["data"]["message"]["body"] == "watchers read this"


async def test_handshake_refusals_use_close_codes(room: LiveRoom, live_node: LiveNode) -> None:
    async with open_ws(live_node, "/ws/conversations/nosuchroom") as client:
        assert await client.close_code() == 4404
    async with open_ws(
        live_node, f"/ws/conversations/{room.slug}", headers={"Origin": "https://evil.example"}
    ) as client:
        assert await client.close_code() == 4400
    # Same-origin browsers are welcome.
    async with in_room(
        live_node, room.slug, headers={"Origin": f"http://127.0.0.1:{live_node.port}"}
    ) as client:
        await client.wait_type("snapshot")


async def test_invite_only_refuses_strangers(live_node: LiveNode) -> None:
    async with live_room(live_node, visibility="invite_only") as r:
        stranger = await r.member("stranger")
        async with open_ws(live_node, f"/ws/conversations/{r.slug}", stranger) as client:
            assert await client.close_code() == 4403
        async with open_ws(live_node, f"/ws/conversations/{r.slug}") as client:
            assert await client.close_code() == 4403
        async with in_room(live_node, r.slug, r.host) as client:
            welcome = client.frames[-1]
            assert welcome["you"]["role"] == "host" and welcome["you"]["can_moderate"] is True


async def test_hello_is_required_first_and_protocol_checked(room: LiveRoom) -> None:
    async with open_ws(room.node, f"/ws/conversations/{room.slug}") as client:
        await client.send(type="chat.send", body="too early", ref="early")
        err = await client.wait_type("error")
        assert err["code"] == "hello_required" and err["ref"] == "early"
        await client.send(type="hello", protocol=2, resume_from=None)
        err = await client.wait_type("error")
        assert err["code"] == "unsupported_protocol"
        await client.send(type="hello", protocol=1, resume_from=None)
        assert (await client.wait_type("welcome"))["resume"] == "snapshot"
        await client.wait_type("snapshot")
        await client.send(type="ping")
        await client.wait_type("pong")


async def test_heartbeat_arrives_with_last_id(tmp_path: Path) -> None:
    node = make_live_node(tmp_path / "hb", JUNTO_HEARTBEAT_SECONDS="1")
    node.start()
    try:
        async with live_room(node) as r, in_room(node, r.slug) as client:
            welcome = client.frames[-1]
            snapshot = await client.wait_type("snapshot")
            assert welcome["heartbeat_seconds"] == 1
            beat = await client.wait_type("heartbeat", timeout=3)
            assert beat["last_id"] == snapshot["last_id"]
            # The next heartbeat names the newest event.
            async with in_room(node, r.slug, r.host) as host:
                done = await host.act("h1", type="chat.send", body="news")
            await client.wait_for(
                lambda f: f.get("type") == "heartbeat" and f["last_id"] == done["id"], timeout=3
            )
    finally:
        node.stop()


async def test_many_concurrent_posters_every_client_sees_one_gapless_sequence(
    room: LiveRoom,
) -> None:
    people = [await room.member(f"poster{i}") for i in range(4)]
    async with (
        in_room(room.node, room.slug, people[0]) as c0,
        in_room(room.node, room.slug, people[1]) as c1,
        in_room(room.node, room.slug, people[2]) as c2,
        in_room(room.node, room.slug, people[3]) as c3,
        in_room(room.node, room.slug) as watcher,
    ):
        clients = [c0, c1, c2, c3]
        start = (await watcher.wait_type("snapshot"))["last_id"]

        async def post(i: int, c: object) -> None:
            for n in range(5):
                await clients[i].act(f"{i}-{n}", type="backchannel.post", body=f"post {i}.{n}")

        await asyncio.gather(*(post(i, c) for i, c in enumerate(clients)))
        end = start + 20
        await watcher.wait_event(end)
        ids = [i for i in watcher.room_ids() if i > start]
        assert ids == list(range(start + 1, end + 1))
