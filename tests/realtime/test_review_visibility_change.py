"""Review: making a conversation invite-only closes the sockets of people it no longer admits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ws_support import LiveRoom, in_room, live_room

from conftest import LiveNode
from helpers import csrf_headers


@pytest.fixture
async def room(live_node: LiveNode) -> AsyncIterator[LiveRoom]:
    async with live_room(live_node) as r:
        yield r


async def test_outsiders_are_closed_when_a_room_becomes_invite_only(room: LiveRoom) -> None:
    ana = await room.member("ana")
    async with (
        in_room(room.node, room.slug, room.host) as host,
        in_room(room.node, room.slug, ana) as member,
        in_room(room.node, room.slug, room.watcher()) as watcher,
    ):
        for client in (host, member, watcher):
            await client.wait_type("presence.state")
        response = await room.host.client.patch(
            f"/api/conversations/{room.slug}",
            json={"visibility": "invite_only"},
            headers=await csrf_headers(room.host.client),
        )
        assert response.status_code == 200, response.text

        assert await watcher.close_code() == 4403
        assert await member.close_code() == 4403
        # The host (a participant) stays and keeps talking.
        ack = await host.act("h1", type="chat.send", body="just us now")
        assert ack["type"] == "ack", ack
        assert host.ws.close_code is None
