"""Review: an open room socket stops acting for a person once their session has ended."""

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


async def test_signing_out_ends_what_an_open_socket_may_do(room: LiveRoom) -> None:
    ana = await room.member("ana")
    async with in_room(room.node, room.slug, ana) as client:
        ok = await client.act("c1", type="chat.send", body="before signing out")
        assert ok["type"] == "ack", ok

        # Signing out (or a password reset revoking every session, or a stolen cookie being
        # revoked) ends the session in the database; the socket still carries the old cookie.
        out = await ana.client.post("/api/signout", headers=await csrf_headers(ana.client))
        assert out.status_code == 204

        await client.send(ref="c2", type="chat.send", body="after signing out")
        assert await client.close_code() == 4403
        refused = [f for f in client.frames if f.get("ref") == "c2"]
        assert all(f["type"] == "error" for f in refused), refused

    chat = (await room.host.client.get(f"/api/conversations/{room.slug}/chat")).json()
    bodies = [m["body"] for m in chat["messages"]]
    assert bodies == ["before signing out"], bodies
