"""Posting when database connections are scarce (issue 12).

A post takes one connection at a time, so it goes through while a single connection is free;
when none is free for `db_wait_seconds`, people get a quick 503 "busy" (or a `busy` error frame)
with Retry-After instead of a half-minute stall and a 500, and nothing is stored.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from room_support import Room, open_room, taken_connections

from helpers import csrf_headers, guest
from junto.config import Settings
from junto.room.protocol import ActionError

WAIT_S = 0.5


@pytest.fixture(name="room")
async def impatient_room(settings: Settings) -> AsyncIterator[Room]:
    async for value in open_room(settings.with_overrides(db_wait_seconds=WAIT_S)):
        yield value


async def post_chat(room: Room, body: str) -> httpx.Response:
    return await room.client.post(
        f"/api/conversations/{room.conv.slug}/chat",
        json={"body": body},
        headers=await csrf_headers(room.client),
    )


async def test_a_post_needs_only_one_free_connection(room: Room) -> None:
    await guest(room.client, "Gus")
    async with taken_connections(room, leave_free=1):
        sent = await post_chat(room, "one connection is enough")
        backchannel = await room.client.post(
            f"/api/conversations/{room.conv.slug}/backchannel",
            json={"body": "for this too"},
            headers=await csrf_headers(room.client),
        )
    assert sent.status_code == 201, sent.text
    assert backchannel.status_code == 201, backchannel.text
    assert sent.json()["message"]["body"] == "one connection is enough"


async def test_no_connection_answers_503_busy_quickly_and_stores_nothing(room: Room) -> None:
    await guest(room.client, "Gus")
    async with taken_connections(room):
        started = time.monotonic()
        refused = await post_chat(room, "not now")
        took = time.monotonic() - started
        anonymous = httpx.AsyncClient(transport=room.client._transport, base_url="http://t")
        async with anonymous:
            read = await anonymous.get(f"/api/conversations/{room.conv.slug}/chat")
    assert refused.status_code == 503
    assert refused.json() == {
        "error": "busy",
        "message": "the node is busy; try again in a moment",
    }
    assert refused.headers["retry-after"] == "2"
    assert took < WAIT_S * 2 + 1, f"a refusal took {took:.1f} s"
    # A route that only reads, for someone without a session cookie, is answered the same way.
    assert read.status_code == 503 and read.json()["error"] == "busy"
    assert read.headers["retry-after"] == "2"
    assert await room.count_chat() == 0
    # Once connections are free again, the same post goes through, and only it is stored.
    again = await post_chat(room, "now")
    assert again.status_code == 201, again.text
    assert await room.count_chat() == 1


async def test_a_socket_action_without_a_connection_is_refused_as_busy(room: Room) -> None:
    gus = await room.guest("Gus")
    async with taken_connections(room):
        with pytest.raises(ActionError) as refused:
            await room.act(gus, type="backchannel.post", body="not now")
    assert refused.value.code == "busy"
    assert refused.value.retry_after == 2
    assert await room.act(gus, type="backchannel.post", body="now") is not None
