"""Two node processes on one PostgreSQL and one Redis: one gapless room stream, one presence.

People post at the same time through both processes, so ids committed by one process are
published while the other's are still in flight; every client, whichever process it is
connected to, must see the same events in the same order with no gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from ws_support import LiveRoom, in_room, live_room, open_ws

from conftest import LiveNode, make_live_node
from helpers import Person

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def two_nodes(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[list[LiveNode]]:
    env = {"JUNTO_DATABASE_URL": postgres_url, "JUNTO_PUBSUB_URL": redis_url}
    nodes = [make_live_node(tmp_path / "a", **env), make_live_node(tmp_path / "b", **env)]
    nodes[0].start()  # runs the migrations first
    try:
        nodes[1].start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def test_concurrent_posts_through_two_processes_form_one_stream(
    two_nodes: list[LiveNode],
) -> None:
    node_a, node_b = two_nodes
    async with live_room(node_a) as room:
        ana = await room.member("ana")
        bob = await _member_on(room, node_b, "bob")
        async with (
            in_room(node_a, room.slug, ana) as a,
            in_room(node_b, room.slug, bob) as b,
            in_room(node_a, room.slug) as watch_a,
            in_room(node_b, room.slug) as watch_b,
        ):
            start = (await watch_a.wait_type("snapshot"))["last_id"]
            await watch_b.wait_type("snapshot")
            # Everyone is counted once, whichever process they are connected to.
            for watcher in (watch_a, watch_b):
                await watcher.wait_for(
                    lambda f: (
                        f.get("type") == "presence.state"
                        and f["data"]["present"] == 4
                        and f["data"]["watchers"] == 2
                        and {m["name"] for m in f["data"]["members"]} == {"ana", "bob"}
                    ),
                    what="ana, bob and two watchers across both processes",
                )

            async def post(client: object, who: str) -> list[int]:
                ids = []
                for n in range(8):
                    answer = await client.act(f"{who}{n}", type="chat.send", body=f"{who} {n}")  # type: ignore[attr-defined]
                    assert answer["type"] == "ack", answer
                    ids.append(answer["id"])
                return ids

            ids_a, ids_b = await asyncio.gather(post(a, "ana"), post(b, "bob"))
            end = start + 16
            assert sorted(ids_a + ids_b) == list(range(start + 1, end + 1))
            streams = []
            for client in (a, b, watch_a, watch_b):
                await client.wait_event(end)
                events = [f for f in client.room_events() if f["id"] > start]
                assert [f["id"] for f in events] == list(range(start + 1, end + 1))
                streams.append(events)
            assert all(s == streams[0] for s in streams), "every client sees the same frames"

        # The lobby on either process counts people on both.
        async with (
            open_ws(node_b, "/ws/lobby") as lobby,
            in_room(node_a, room.slug),
            in_room(node_b, room.slug, bob),
        ):
            await lobby.wait_for(
                lambda f: any(
                    c.get("slug") == room.slug and c.get("present") == 2
                    for c in (f.get("conversations") or [f.get("conversation") or {}])
                ),
                what="two people present in the lobby entry",
            )


async def _member_on(room: LiveRoom, node: LiveNode, name: str) -> Person:
    """Sign up through another process (sessions live in the shared database)."""
    person = await room.member(name)
    person.client.base_url = node.url  # type: ignore[assignment]
    return person
