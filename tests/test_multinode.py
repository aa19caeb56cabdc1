"""Two node processes on one PostgreSQL and one Redis behave as one node.

People connected to different processes see each other's chat and backchannel posts (with the
same room-stream ids) and each other's presence. This is what lets a node scale out behind a load
balancer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from conftest import LiveNode, make_live_node
from helpers import csrf_headers, signup
from private_redis import start_private_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

Frame = dict[str, Any]


@contextmanager
def running_pair(
    folder: Path, database_url: str, pubsub_url: str
) -> Iterator[tuple[LiveNode, LiveNode]]:
    env = {"JUNTO_DATABASE_URL": database_url, "JUNTO_PUBSUB_URL": pubsub_url}
    node_a = make_live_node(folder / "a", **env)
    node_b = make_live_node(folder / "b", **env)
    # A runs the migrations at start; B starts once A is healthy, so they never race.
    node_a.start()
    try:
        node_b.start()
        yield node_a, node_b
    finally:
        node_b.stop()
        node_a.stop()


@pytest.fixture
def two_nodes(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> Iterator[tuple[LiveNode, LiveNode]]:
    with running_pair(tmp_path, postgres_url, redis_url) as nodes:
        yield nodes


async def live_conversation(host: httpx.AsyncClient, title: str) -> str:
    """Create and start a conversation as `host`; return its slug."""
    created = await host.post(
        "/api/conversations",
        json={"title": title, "tags": ["scale"]},
        headers=await csrf_headers(host),
    )
    assert created.status_code == 201, created.text
    slug: str = created.json()["slug"]
    started = await host.post(f"/api/conversations/{slug}/start", headers=await csrf_headers(host))
    assert started.status_code == 200, started.text
    return slug


class RoomClient:
    """One person's WebSocket to one node, keeping every frame it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []

    async def send(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def wait_for(
        self, match: Callable[[Frame], bool], timeout: float = 10, start: int = 0
    ) -> Frame:
        """The first matching frame from the `start`-th received, waiting up to `timeout`."""
        for frame in self.frames[start:]:
            if match(frame):
                return frame
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = cast(Frame, json.loads(await self.ws.recv()))  # a JSON object
                    self.frames.append(frame)
                    if match(frame):
                        return frame
        except TimeoutError:
            seen = [f.get("type") for f in self.frames[-20:]]
            raise AssertionError(
                f"expected a matching frame within {timeout} s, got {seen}"
            ) from None

    async def request(self, frame: Frame) -> Frame:
        """Send a frame with a ref and return its ack (an error frame fails the test)."""
        ref = f"r{len(self.frames)}-{frame['type']}"
        await self.send({**frame, "ref": ref})
        reply = await self.wait_for(lambda f: f.get("ref") == ref and f["type"] in ("ack", "error"))
        assert reply["type"] == "ack", f"expected an ack for {frame['type']}, got {reply}"
        return reply


def cookie_header(client: httpx.AsyncClient) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


@asynccontextmanager
async def join(node: LiveNode, slug: str, client: httpx.AsyncClient) -> AsyncIterator[RoomClient]:
    async with connect(
        f"{node.ws_url}/ws/conversations/{slug}",
        additional_headers={"Cookie": cookie_header(client)},
        open_timeout=10,
    ) as ws:
        room = RoomClient(ws)
        await room.send({"type": "hello", "protocol": 1, "resume_from": None})
        welcome = await room.wait_for(lambda f: f["type"] in ("welcome", "error"))
        assert welcome["type"] == "welcome", welcome
        yield room


def present_ids(frame: Frame) -> set[int]:
    return {member["id"] for member in frame["data"]["members"]}


async def test_a_message_posted_on_one_process_reaches_a_client_on_the_other(
    two_nodes: tuple[LiveNode, LiveNode],
) -> None:
    node_a, node_b = two_nodes
    async with (
        httpx.AsyncClient(base_url=node_a.url, timeout=10) as ana_http,
        httpx.AsyncClient(base_url=node_b.url, timeout=10) as ben_http,
    ):
        for http in (ana_http, ben_http):
            health = (await http.get("/healthz")).json()
            assert (health["database"], health["pubsub"]) == ("postgresql", "redis")
        ana = await signup(ana_http, "ana_multinode")  # through A
        ben = await signup(ben_http, "ben_multinode")  # through B: one shared database
        slug = await live_conversation(ana_http, "Across processes")
        # Node B sees the state that node A wrote.
        assert (await ben_http.get(f"/api/conversations/{slug}")).json()["state"] == "live"

        async with join(node_b, slug, ben_http) as on_b:
            async with join(node_a, slug, ana_http) as on_a:
                # Presence is aggregated across processes: each sees the other person.
                await on_b.wait_for(
                    lambda f: f["type"] == "presence.state" and ana["id"] in present_ids(f)
                )
                await on_a.wait_for(
                    lambda f: (
                        f["type"] == "presence.state" and {ana["id"], ben["id"]} <= present_ids(f)
                    )
                )

                chat_ack = await on_a.request({"type": "chat.send", "body": "hello from A"})
                chat = await on_b.wait_for(
                    lambda f: f["type"] == "chat.message" and f["id"] == chat_ack["id"]
                )
                assert chat["stream"] == "room"
                assert chat["data"]["message"]["body"] == "hello from A"
                assert chat["data"]["message"]["author"]["id"] == ana["id"]

                post_ack = await on_a.request(
                    {"type": "backchannel.post", "body": "good point #scale"}
                )
                assert post_ack["id"] > chat_ack["id"]
                post = await on_b.wait_for(
                    lambda f: f["type"] == "backchannel.post" and f["id"] == post_ack["id"]
                )
                assert post["data"]["post"]["body"] == "good point #scale"
                assert post["data"]["post"]["author"]["id"] == ana["id"]

                # And the other way round, interleaved in one id sequence.
                reply_ack = await on_b.request({"type": "chat.send", "body": "hello from B"})
                assert reply_ack["id"] > post_ack["id"]
                reply = await on_a.wait_for(
                    lambda f: f["type"] == "chat.message" and f["id"] == reply_ack["id"]
                )
                assert reply["data"]["message"]["body"] == "hello from B"

                # Each client got the room stream in id order, without gaps or duplicates.
                await on_b.wait_for(
                    lambda f: f.get("stream") == "room" and f["id"] == reply_ack["id"]
                )
                for room in (on_a, on_b):
                    ids = [f["id"] for f in room.frames if f.get("stream") == "room"]
                    assert ids == list(range(ids[0], ids[-1] + 1)), ids
                    assert {chat_ack["id"], post_ack["id"], reply_ack["id"]} <= set(ids)

                seen_before_leaving = len(on_b.frames)
            # When ana leaves node A, node B's presence stops counting her.
            await on_b.wait_for(
                lambda f: f["type"] == "presence.state" and ana["id"] not in present_ids(f),
                start=seen_before_leaving,
            )


async def test_the_processes_recover_when_redis_restarts(tmp_path: Path, postgres_url: str) -> None:
    """Messages posted while Redis is down reach the other process once it is back, in order."""
    redis = start_private_redis(tmp_path)
    try:
        with running_pair(tmp_path, postgres_url, redis.url) as (node_a, node_b):
            async with (
                httpx.AsyncClient(base_url=node_a.url, timeout=10) as ana_http,
                httpx.AsyncClient(base_url=node_b.url, timeout=10) as ben_http,
            ):
                await signup(ana_http, "ana_outage")
                await signup(ben_http, "ben_outage")
                slug = await live_conversation(ana_http, "Through an outage")
                async with (
                    join(node_b, slug, ben_http) as on_b,
                    join(node_a, slug, ana_http) as on_a,
                ):
                    before = await on_a.request({"type": "chat.send", "body": "before"})
                    await on_b.wait_for(
                        lambda f: f.get("stream") == "room" and f["id"] == before["id"]
                    )

                    redis.kill()
                    # Stored and acknowledged although the other process cannot hear it now.
                    during = await on_a.request({"type": "chat.send", "body": "during"})
                    await asyncio.to_thread(redis.start)
                    after = await on_a.request({"type": "chat.send", "body": "after"})

                    for room in (on_a, on_b):
                        await room.wait_for(
                            lambda f: f.get("stream") == "room" and f["id"] == after["id"],
                            timeout=20,
                        )
                        bodies = {
                            f["id"]: f["data"]["message"]["body"]
                            for f in room.frames
                            if f.get("type") == "chat.message"
                        }
                        assert bodies[during["id"]] == "during"
                        assert bodies[after["id"]] == "after"
                        ids = [f["id"] for f in room.frames if f.get("stream") == "room"]
                        assert ids == list(range(ids[0], ids[-1] + 1)), ids
    finally:
        redis.kill()
