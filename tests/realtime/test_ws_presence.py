"""Presence and the lobby, as people in a room and on the lobby page see them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ws_support import Client, LiveRoom, in_room, live_room, open_ws

from conftest import LiveNode
from helpers import csrf_headers


@pytest.fixture
async def room(live_node: LiveNode) -> AsyncIterator[LiveRoom]:
    """A live node with a signed-up host and a live public conversation."""
    async with live_room(live_node) as r:
        yield r


def _presence(pred: Any) -> Any:
    return lambda f: f.get("type") == "presence.state" and pred(f["data"])


async def test_presence_counts_people_guests_and_watchers_once_each(room: LiveRoom) -> None:
    ana = await room.member("ana")
    gus = await room.guest("Gus")
    async with (
        in_room(room.node, room.slug, ana) as ana_tab1,
        in_room(room.node, room.slug, ana) as ana_tab2,
        in_room(room.node, room.slug, gus) as gus_tab,
    ):
        async with in_room(room.node, room.slug) as watcher:
            # Two tabs of ana count once; the anonymous watcher is counted, not named.
            state = await gus_tab.wait_for(
                _presence(lambda d: d["present"] == 3 and d["watchers"] == 1),
                what="ana, Gus and a watcher",
            )
            data = state["data"]
            assert sorted(m["name"] for m in data["members"]) == ["Gus", "ana"]
            assert data["guests"] == 1 and data["on_stage"] == 0 and data["hands"] == 0
            gus_entry = next(m for m in data["members"] if m["name"] == "Gus")
            assert gus_entry == {
                "id": gus.id, "name": "Gus", "colour": gus_entry["colour"], "is_guest": True,
                "role": "audience", "hand_raised": False,
            }  # fmt: skip
            await watcher.wait_for(_presence(lambda d: d["present"] == 3))
        # The watcher left.
        await gus_tab.wait_for(_presence(lambda d: d["present"] == 2 and d["watchers"] == 0))
        await ana_tab2.ws.close()
        # One of ana's tabs closed: she is still here.
        await asyncio.sleep(1.0)
        await gus_tab.drain()
        latest = [f for f in gus_tab.frames if f.get("type") == "presence.state"][-1]
        assert latest["data"]["present"] == 2
        assert sorted(m["name"] for m in latest["data"]["members"]) == ["Gus", "ana"]
    # Presence frame ids increase on every connection.
    for client in (ana_tab1, gus_tab):
        ids = [f["id"] for f in client.frames if f.get("type") == "presence.state"]
        assert ids == sorted(set(ids))


async def test_hands_and_stage_changes_show_in_presence(room: LiveRoom) -> None:
    gus = await room.guest("Gus")
    async with (
        in_room(room.node, room.slug, room.host) as host,
        in_room(room.node, room.slug, gus) as guest,
    ):
        await host.wait_for(_presence(lambda d: d["present"] == 2))
        assert (await guest.act("up", type="hand.raise"))["type"] == "ack"
        state = await host.wait_for(_presence(lambda d: d["hands"] == 1))
        assert _member(state, gus.id)["hand_raised"] is True
        assert (await host.act("inv", type="stage.invite", user_id=gus.id))["type"] == "ack"
        state = await guest.wait_for(_presence(lambda d: d["on_stage"] == 2))
        entry = _member(state, gus.id)
        assert entry["role"] == "speaker" and entry["hand_raised"] is False
        assert state["data"]["hands"] == 0
        assert _member(state, room.host.id)["role"] == "host"
        # The stage event itself reached everyone too.
        await guest.find(lambda f: f.get("type") == "stage.role" and f["data"]["role"] == "speaker")


def _member(state: dict[str, Any], user_id: int) -> dict[str, Any]:
    return next(m for m in state["data"]["members"] if m["id"] == user_id)


async def _lobby_entry(lobby: Client, slug: str, pred: Any, what: str) -> dict[str, Any]:
    def matches(f: dict[str, Any]) -> bool:
        if f.get("type") == "lobby.snapshot":
            return any(c["slug"] == slug and pred(c) for c in f["conversations"])
        return (
            f.get("type") == "lobby.update"
            and f["conversation"]["slug"] == slug
            and pred(f["conversation"])
        )

    frame = await lobby.wait_for(matches, what=what)
    if frame["type"] == "lobby.update":
        entry: dict[str, Any] = frame["conversation"]
        return entry
    return next(c for c in frame["conversations"] if c["slug"] == slug)


async def test_lobby_lists_live_conversations_with_live_counts(room: LiveRoom) -> None:
    host = room.host.client
    upcoming = await host.post(
        "/api/conversations",
        json={"title": "Later today", "scheduled_at": "2099-01-01T10:00:00Z"},
        headers=await csrf_headers(host),
    )
    assert upcoming.status_code == 201, upcoming.text
    later = upcoming.json()["slug"]
    async with open_ws(room.node, "/ws/lobby") as lobby:
        snapshot = await lobby.wait_type("lobby.snapshot")
        entries = {c["slug"]: c for c in snapshot["conversations"]}
        assert entries[room.slug]["state"] == "live"
        assert entries[room.slug]["present"] == 0 and entries[room.slug]["on_stage"] == 0
        assert entries[later]["state"] == "scheduled"
        assert entries[later]["scheduled_at"].startswith("2099-01-01T10:00:00")
        assert entries[room.slug]["tags"] == ["test"]

        # People arriving in the room show up in the lobby within a moment.
        async with in_room(room.node, room.slug, room.host), in_room(room.node, room.slug):
            entry = await _lobby_entry(
                lobby, room.slug, lambda c: c["present"] == 2, "two people present"
            )
            assert entry["on_stage"] == 1  # the host
        await _lobby_entry(lobby, room.slug, lambda c: c["present"] == 0, "everyone gone")

        # Editing the title updates the entry; ending the conversation removes it.
        edit = await host.patch(
            f"/api/conversations/{room.slug}",
            json={"title": "Renamed"},
            headers=await csrf_headers(host),
        )
        assert edit.status_code == 200, edit.text
        await _lobby_entry(lobby, room.slug, lambda c: c.get("title") == "Renamed", "new title")
        end = await host.post(
            f"/api/conversations/{room.slug}/end", headers=await csrf_headers(host)
        )
        assert end.status_code == 200, end.text
        await _lobby_entry(lobby, room.slug, lambda c: c.get("removed") is True, "removal")
        # A conversation going live appears.
        start = await host.post(
            f"/api/conversations/{later}/start", headers=await csrf_headers(host)
        )
        assert start.status_code == 200, start.text
        await _lobby_entry(lobby, later, lambda c: c["state"] == "live", "the new live one")
        await lobby.send(type="ping")
        await lobby.wait_type("pong")

    # A fresh lobby client gets the current picture.
    async with open_ws(room.node, "/ws/lobby") as lobby:
        snapshot = await lobby.wait_type("lobby.snapshot")
        slugs = {c["slug"]: c["state"] for c in snapshot["conversations"]}
        assert slugs == {later: "live"}


async def test_lobby_refuses_foreign_origins(room: LiveRoom) -> None:
    async with open_ws(room.node, "/ws/lobby", headers={"Origin": "https://evil.example"}) as lobby:
        assert await lobby.close_code() == 4400
    assert isinstance(room.host.client, httpx.AsyncClient)
