"""Conversation changes reach people live: the room stream and the lobby, on a real node process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from conftest import LiveNode
from helpers import csrf_headers, signup

Frame = dict[str, Any]
TIMEOUT = 10.0


def cookie_header(http: httpx.AsyncClient) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in http.cookies.items())}


async def next_frame(ws: ClientConnection, pred: Callable[[Frame], bool], what: str) -> Frame:
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame: Frame = json.loads(await ws.recv())
            if pred(frame):
                return frame


async def quiet_for(ws: ClientConnection, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(json.loads(await ws.recv()))
    except TimeoutError:
        return frames


@asynccontextmanager
async def host_on(node: LiveNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.url, timeout=TIMEOUT) as http:
        await signup(http, "ana")
        yield http


async def call(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Frame:
    response = await http.request(method, path, json=body, headers=await csrf_headers(http))
    assert response.status_code in (200, 201), response.text
    data: Frame = response.json()
    return data


async def test_room_clients_see_state_and_metadata_changes(live_node: LiveNode) -> None:
    async with host_on(live_node) as http:
        slug = (await call(http, "POST", "/api/conversations", {"title": "Before"}))["slug"]
        async with connect(f"{live_node.ws_url}/ws/conversations/{slug}") as watcher:
            await watcher.send(json.dumps({"type": "hello", "protocol": 1, "resume_from": None}))
            await next_frame(watcher, lambda f: f["type"] == "welcome", "welcome")

            await call(http, "POST", f"/api/conversations/{slug}/start")
            live = await next_frame(watcher, lambda f: f["type"] == "conversation.state", "live")
            assert live["stream"] == "room" and live["data"]["state"] == "live"
            assert live["data"]["started_at"] and live["data"]["ended_at"] is None

            await call(http, "PATCH", f"/api/conversations/{slug}", {"title": "After"})
            updated = await next_frame(
                watcher, lambda f: f["type"] == "conversation.updated", "update"
            )
            assert updated["data"]["title"] == "After" and updated["id"] == live["id"] + 1

            await call(http, "POST", f"/api/conversations/{slug}/end")
            ended = await next_frame(watcher, lambda f: f["type"] == "conversation.state", "end")
            assert ended["data"]["state"] == "ended" and ended["id"] == updated["id"] + 1


async def test_lobby_follows_public_conversations_only(live_node: LiveNode) -> None:
    async with host_on(live_node) as http, connect(f"{live_node.ws_url}/ws/lobby") as lobby:
        snapshot = await next_frame(lobby, lambda f: f["type"] == "lobby.snapshot", "snapshot")
        assert snapshot["conversations"] == []

        public = (await call(http, "POST", "/api/conversations", {"title": "Open"}))["slug"]
        added = await next_frame(lobby, lambda f: f["type"] == "lobby.update", "new entry")
        assert added["conversation"]["slug"] == public
        assert added["conversation"]["state"] == "scheduled"

        await call(http, "POST", f"/api/conversations/{public}/start")
        went_live = await next_frame(
            lobby,
            lambda f: f["type"] == "lobby.update" and f["conversation"].get("state") == "live",
            "live entry",
        )
        assert went_live["conversation"]["slug"] == public

        # A watcher in the room shows up in the lobby's counts.
        async with connect(f"{live_node.ws_url}/ws/conversations/{public}") as watcher:
            await watcher.send(json.dumps({"type": "hello", "protocol": 1, "resume_from": None}))
            counted = await next_frame(
                lobby,
                lambda f: f["type"] == "lobby.update" and f["conversation"].get("present") == 1,
                "a count of one",
            )
            assert counted["conversation"]["slug"] == public
            listed = (await http.get("/api/conversations?state=live")).json()["conversations"]
            assert listed[0]["present"] == 1

        # Invite-only and unlisted conversations never reach the lobby, even when they go live.
        for visibility in ("invite_only", "unlisted"):
            body = {"title": f"Hidden {visibility}", "visibility": visibility}
            hidden = (await call(http, "POST", "/api/conversations", body))["slug"]
            await call(http, "POST", f"/api/conversations/{hidden}/start")
        frames = await quiet_for(lobby, 1.5)
        assert not [f for f in frames if "Hidden" in json.dumps(f)]

        # Going private removes a listed conversation; ending removes it too.
        await call(http, "PATCH", f"/api/conversations/{public}", {"visibility": "unlisted"})
        removed = await next_frame(
            lobby,
            lambda f: f["type"] == "lobby.update" and f["conversation"].get("removed"),
            "gone",
        )
        assert removed["conversation"] == {"slug": public, "removed": True}
