"""Real WebSocket clients against real node processes, for the hub's tests.

`Client` wraps one `websockets` connection and keeps what it received, split into room-stream
events (by id), presence frames and control frames, so tests can assert "exactly these ids, in
order, once each" the way a user would notice a lost or repeated message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import LiveNode
from helpers import Person, csrf_headers, guest, signup

Frame = dict[str, Any]
TIMEOUT = 10.0


@dataclass
class Client:
    ws: ClientConnection
    frames: list[Frame] = field(default_factory=list)
    _cursor: int = 0

    async def recv(self, timeout: float = TIMEOUT) -> Frame:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"expected a text frame, got {type(raw).__name__}"
        frame: Frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def wait_for(
        self, pred: Callable[[Frame], bool], timeout: float = TIMEOUT, what: str = "a frame"
    ) -> Frame:
        """The first frame (already received or arriving) after the cursor matching `pred`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            while self._cursor < len(self.frames):
                frame = self.frames[self._cursor]
                self._cursor += 1
                if pred(frame):
                    return frame
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.frames[-10:]}")
            try:
                await self.recv(left)
            except TimeoutError:
                continue

    async def wait_event(self, event_id: int, timeout: float = TIMEOUT) -> Frame:
        """Room-stream event `event_id`, whenever it arrived."""
        for frame in self.room_events():
            if frame["id"] == event_id:
                return frame
        return await self.wait_for(
            lambda f: f.get("stream") == "room" and f.get("id") == event_id,
            timeout,
            f"room event {event_id}",
        )

    async def find(
        self, pred: Callable[[Frame], bool], timeout: float = TIMEOUT, what: str = "a frame"
    ) -> Frame:
        """The first matching frame received so far, or the next one to arrive."""
        for frame in self.frames:
            if pred(frame):
                return frame
        self._cursor = len(self.frames)
        return await self.wait_for(pred, timeout, what)

    async def wait_type(self, type_: str, timeout: float = TIMEOUT) -> Frame:
        return await self.wait_for(lambda f: f.get("type") == type_, timeout, type_)

    async def act(self, ref: str, **frame: Any) -> Frame:
        """Send an action and return its ack or error."""
        await self.send(ref=ref, **frame)
        return await self.wait_for(
            lambda f: f.get("type") in ("ack", "error") and f.get("ref") == ref,
            what=f"the answer to {ref}",
        )

    def room_events(self) -> list[Frame]:
        return [f for f in self.frames if f.get("stream") == "room"]

    def room_ids(self) -> list[int]:
        return [int(f["id"]) for f in self.room_events()]

    async def drain(self, quiet: float = 0.3) -> None:
        """Read until nothing arrives for `quiet` seconds."""
        while True:
            try:
                await self.recv(quiet)
            except TimeoutError:
                return

    async def close_code(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes; the close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.recv(timeout)
        except ConnectionClosed:
            pass
        return self.ws.close_code


@asynccontextmanager
async def open_ws(
    node: LiveNode, path: str, person: Person | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    headers = person.cookie_headers() if person is not None else {}
    headers.update(kwargs.pop("headers", {}))
    async with connect(
        node.ws_url + path, additional_headers=headers, open_timeout=TIMEOUT, **kwargs
    ) as ws:
        yield Client(ws)


@asynccontextmanager
async def in_room(
    node: LiveNode,
    slug: str,
    person: Person | None = None,
    resume_from: int | None = None,
    **kwargs: Any,
) -> AsyncIterator[Client]:
    """Connected, hello sent, welcome received (the backlog follows)."""
    async with open_ws(node, f"/ws/conversations/{slug}", person, **kwargs) as client:
        await client.send(type="hello", protocol=1, resume_from=resume_from)
        welcome = await client.wait_type("welcome")
        assert welcome["protocol"] == 1
        yield client


# ---- people and conversations on a live node ---------------------------------------------------


@dataclass
class LiveRoom:
    node: LiveNode
    host: Person
    slug: str
    people: list[Person] = field(default_factory=list)

    async def member(self, username: str) -> Person:
        http = httpx.AsyncClient(base_url=self.node.url, timeout=TIMEOUT)
        self.people.append(p := Person(http, await signup(http, username)))
        return p

    async def guest(self, name: str) -> Person:
        http = httpx.AsyncClient(base_url=self.node.url, timeout=TIMEOUT)
        self.people.append(p := Person(http, await guest(http, name)))
        return p

    def watcher(self) -> Person:
        return Person(httpx.AsyncClient(base_url=self.node.url), {})

    async def close(self) -> None:
        for p in [self.host, *self.people]:
            await p.client.aclose()


async def create_conversation(host: Person, *, start: bool = True, **fields: Any) -> str:
    body = {"title": "Open questions", "tags": ["test"], **fields}
    response = await host.client.post(
        "/api/conversations", json=body, headers=await csrf_headers(host.client)
    )
    assert response.status_code == 201, response.text
    slug = str(response.json()["slug"])
    if start:
        response = await host.client.post(
            f"/api/conversations/{slug}/start", headers=await csrf_headers(host.client)
        )
        assert response.status_code == 200, response.text
    return slug


@asynccontextmanager
async def live_room(node: LiveNode, **fields: Any) -> AsyncIterator[LiveRoom]:
    http = httpx.AsyncClient(base_url=node.url, timeout=TIMEOUT)
    host = Person(http, await signup(http, "hostess", display_name="Hostess"))
    room = LiveRoom(node, host, await create_conversation(host, **fields))
    try:
        yield room
    finally:
        await room.close()
