"""The REST mirror of the room: same rules as the WebSocket, HTTP status codes for refusals."""

from __future__ import annotations

from typing import Any

import httpx
from room_support import Room, open_room, room_fixture  # noqa: F401 - the `room` fixture

from helpers import csrf_headers, guest, signup
from junto.config import Settings
from junto.enums import ConversationState, Role, Visibility
from junto.storage.tables import User


def url(room: Room, path: str) -> str:
    return f"/api/conversations/{room.conv.slug}/{path}"


async def post(room: Room, path: str, body: Any) -> httpx.Response:
    return await room.client.post(
        url(room, path), json=body, headers=await csrf_headers(room.client)
    )


async def as_user(room: Room, client: httpx.AsyncClient, name: str) -> int:
    me = await signup(client, name)
    return int(me["id"])


async def test_post_and_read_chat_over_http(room: Room) -> None:
    await signup(room.client, "ana")
    sent = await post(room, "chat", {"body": "Hello over HTTP <b>bold</b>"})
    assert sent.status_code == 201, sent.text
    data = sent.json()
    assert data["event_id"] == await room.last_seq()
    assert data["message"]["body"] == "Hello over HTTP <b>bold</b>"
    assert data["message"]["author"]["name"] == "ana"
    for i in range(4):
        assert (await post(room, "chat", {"body": f"message {i}"})).status_code == 201
    page = (await room.client.get(url(room, "chat"), params={"limit": 3})).json()
    assert [m["body"] for m in page["messages"]] == ["message 1", "message 2", "message 3"]
    older = await room.client.get(
        url(room, "chat"), params={"limit": 3, "before": page["next_before"]}
    )
    assert [m["body"] for m in older.json()["messages"]] == [
        "Hello over HTTP <b>bold</b>",
        "message 0",
    ]
    assert older.json()["next_before"] is None


async def test_backchannel_over_http_with_tag_filter(room: Room) -> None:
    await guest(room.client, "Gus")
    for body in ("Heat islands #UrbanHeat", "Trees! #trees #urbanheat", "No tags here"):
        response = await post(room, "backchannel", {"body": body})
        assert response.status_code == 201, response.text
    created = response.json()["post"]
    assert created["author"]["is_guest"] is True and created["hashtags"] == []
    everything = (await room.client.get(url(room, "backchannel"))).json()["posts"]
    assert everything[0]["body"] == "Heat islands #UrbanHeat"
    assert everything[0]["mine"] == []
    tagged = await room.client.get(url(room, "backchannel"), params={"tag": "#URBANHEAT"})
    assert [p["hashtags"] for p in tagged.json()["posts"]] == [
        ["urbanheat"],
        ["trees", "urbanheat"],
    ]
    # "urban" is not "urbanheat": tags match whole.
    assert (await room.client.get(url(room, "backchannel"), params={"tag": "urban"})).json()[
        "posts"
    ] == []
    bad = await room.client.get(url(room, "backchannel"), params={"tag": "no spaces"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "tag"]


async def test_refusals_map_to_http_statuses(room: Room) -> None:
    anonymous = await post(room, "chat", {"body": "hi"})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "not_signed_in"
    ana_id = await as_user(room, room.client, "ana")
    too_long = await post(room, "chat", {"body": "x" * 2001})
    assert too_long.status_code == 413 and "2000" in too_long.json()["message"]
    empty = await post(room, "backchannel", {"body": "   "})
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["msg"] == "body: expected some text, got only whitespace"
    missing = await post(room, "chat", {"text": "wrong field"})
    assert missing.status_code == 422
    await room.act(room.host, type="room.settings", slow_mode_seconds=60)
    assert (await post(room, "chat", {"body": "first"})).status_code == 201
    slow = await post(room, "chat", {"body": "second"})
    assert slow.status_code == 429 and slow.json()["error"] == "slow_mode"
    assert 1 <= int(slow.headers["Retry-After"]) <= 60
    async with room.node.db() as db:
        ana = await db.get(User, ana_id)
    await room.act(room.host, type="participant.block", user_id=ana_id)
    blocked = await post(room, "backchannel", {"body": "blocked?"})
    assert blocked.status_code == 403 and blocked.json()["error"] == "blocked"
    assert ana is not None
    await room.set_state(ConversationState.ENDED)
    await room.act(room.host, type="participant.unblock", user_id=ana_id)
    ended = await post(room, "backchannel", {"body": "after the end"})
    assert ended.status_code == 409
    assert ended.json()["message"] == "expected scheduled or live, got ended"
    assert (await post(room, "chat", {"body": "x"})).status_code == 409


async def test_guests_hit_the_rate_limit_over_http_too(room: Room) -> None:
    await guest(room.client, "Gus")
    limits = room.node.settings.limits
    statuses = [
        (await post(room, "backchannel", {"body": f"post {i}"})).status_code
        for i in range(limits.guest_burst + 1)
    ]
    assert statuses == [201] * limits.guest_burst + [429]


async def test_events_endpoint_returns_the_room_stream(room: Room) -> None:
    await signup(room.client, "ana")
    for i in range(3):
        await post(room, "chat", {"body": f"m{i}"})
    last = await room.last_seq()
    response = await room.client.get(url(room, "events"), params={"after": last - 3})
    events = response.json()["events"]
    assert [e["id"] for e in events] == [last - 2, last - 1, last]
    assert {e["type"] for e in events} == {"chat.message"}
    assert events[0]["stream"] == "room" and events[0]["ts"].endswith("Z")
    assert [e["data"]["message"]["body"] for e in events] == ["m0", "m1", "m2"]
    limited = await room.client.get(url(room, "events"), params={"after": 0, "limit": 2})
    assert [e["id"] for e in limited.json()["events"]] == [1, 2]
    assert (await room.client.get(url(room, "events"), params={"after": -1})).status_code == 422


async def test_unknown_conversations_are_404(room: Room) -> None:
    for path in ("chat", "backchannel", "events"):
        response = await room.client.get(f"/api/conversations/nosuchroom/{path}")
        assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_invite_only_conversations_are_hidden_from_outsiders(settings: Settings) -> None:
    async for private in open_room(settings, visibility=Visibility.INVITE_ONLY):
        await private.act(private.host, type="chat.send", body="members only")
        eve_id = await as_user(private, private.client, "eve")
        for path in ("chat", "backchannel", "events"):
            response = await private.client.get(url(private, path))
            assert response.status_code == 404, path
        assert (await post(private, "chat", {"body": "let me in"})).status_code == 404
        async with private.node.db() as db:
            eve = await db.get(User, eve_id)
        assert eve is not None
        await private.set_role(eve, Role.AUDIENCE)
        page = (await private.client.get(url(private, "chat"))).json()
        assert [m["body"] for m in page["messages"]] == ["members only"]
