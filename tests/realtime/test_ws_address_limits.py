"""One address cannot open sockets without bound: a cap on concurrent sockets and a rate bucket.

Before the cap, 1,000 sockets from one address in a few seconds each counted as a watcher,
so anyone could make a conversation look crowded (and hold 1,000 connections' memory).
Refusals are WebSocket close 1013 ("try again later"), which realtime.js retries with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from ws_support import TIMEOUT, Client, LiveRoom, in_room, live_room, open_ws

from conftest import LiveNode, make_live_node
from junto.ratelimit import AddressConnections

CAP = 4
CLOSE_TRY_AGAIN_LATER = 1013


@pytest.fixture
def capped_node(tmp_path: Path) -> Iterator[LiveNode]:
    # A generous rate bucket, so that only the cap on concurrent sockets is tested here.
    node = make_live_node(
        tmp_path / "node",
        JUNTO_LIMIT_WS_PER_ADDRESS=str(CAP),
        JUNTO_LIMIT_WS_CONNECT_BURST="100",
        JUNTO_MEDIA_BACKEND="none",
    )
    node.start()
    yield node
    node.stop()


async def _refusal(node: LiveNode, path: str) -> tuple[int | None, str]:
    """Connect and read until the server closes: its close code and reason (a refused socket
    is closed right after the handshake, before any hello)."""
    async with connect(node.ws_url + path, open_timeout=TIMEOUT) as ws:
        code = await Client(ws).close_code(timeout=TIMEOUT)
        return code, ws.close_reason or ""


async def _present(room: LiveRoom) -> int:
    """How many people the conversation's summary says are present (what the lobby shows)."""
    answer = await room.host.client.get(f"/api/conversations/{room.slug}")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["present"])


async def _wait_until_present(client: Client, expected: int) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        frame = await client.wait_for(lambda f: f.get("type") == "presence.state")
        if frame["data"]["present"] == expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {expected} present, got {frame['data']}")


async def test_one_address_gets_at_most_the_cap_and_the_count_is_not_inflated(
    capped_node: LiveNode,
) -> None:
    async with live_room(capped_node) as room, AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(in_room(capped_node, room.slug))
                   for _ in range(CAP)]  # fmt: skip
        await _wait_until_present(sockets[0], CAP)
        # One more, room or lobby, from the same address: refused with 1013 and a reason.
        for path in (f"/ws/conversations/{room.slug}", "/ws/lobby"):
            code, reason = await _refusal(capped_node, path)
            assert code == CLOSE_TRY_AGAIN_LATER, (path, code, reason)
            assert "too many connections from your address" in reason
        # The refused ones never counted as watchers.
        assert await _present(room) == CAP
        # One leaves: a new one gets in (as soon as the node has seen the first one go).
        await sockets.pop().ws.close()
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            try:
                newcomer = await stack.enter_async_context(in_room(capped_node, room.slug))
                break
            except (ConnectionClosed, TimeoutError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("no place was freed by a closed socket") from exc
                await asyncio.sleep(0.05)
        await newcomer.wait_type("snapshot")
        assert await _present(room) == CAP


@pytest.fixture
async def rate_limited_node(tmp_path: Path) -> AsyncIterator[LiveNode]:
    node = make_live_node(
        tmp_path / "node",
        JUNTO_LIMIT_WS_CONNECT_BURST="5",
        JUNTO_LIMIT_WS_CONNECT_PER_SECOND="0.01",
        JUNTO_MEDIA_BACKEND="none",
    )
    node.start()
    yield node
    node.stop()


async def test_one_address_cannot_reconnect_faster_than_the_bucket(
    rate_limited_node: LiveNode,
) -> None:
    for _ in range(5):  # one at a time: the cap on concurrent sockets is never reached
        async with open_ws(rate_limited_node, "/ws/lobby") as client:
            assert (await client.recv())["type"] == "lobby.snapshot"
    code, reason = await _refusal(rate_limited_node, "/ws/lobby")
    assert code == CLOSE_TRY_AGAIN_LATER and "too many connections" in reason, (code, reason)


def test_an_ipv6_client_is_limited_by_its_64_and_places_are_given_back() -> None:
    places = AddressConnections(cap=2, burst=100, per_second=1.0)
    assert places.admit("2001:db8:1:2::1") is None
    assert places.admit("2001:db8:1:2:ffff::9") is None  # the same /64, another address
    assert places.admit("2001:db8:1:2::3") is not None
    assert places.admit("2001:db8:1:3::1") is None  # the next /64 is someone else
    assert places.admit("::ffff:192.0.2.7") is None and places.open_from("192.0.2.7") == 1
    for address in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1", "192.0.2.7"):
        places.release(address)
    assert places.open_from("2001:db8:1:2::1") == 0 and not places._open  # nothing kept
