"""Helpers shared by the tests: waiting for something (`eventually`, never a fixed sleep), the
tools a test needs (`need_tool`: skip locally, fail under CI), and talking to a node over HTTP
(in-process or live).

CSRF is double-submit (see junto.web.security): the node sets a `junto_csrf` cookie on the
first response, and every unsafe request must send the same value in `X-CSRF-Token`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar, overload

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import update

from junto.app import build_app
from junto.config import Settings
from junto.node import Node
from junto.storage.tables import User

CSRF_COOKIE = "junto_csrf"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_PASSWORD = "correct horse battery"

IN_CI = os.environ.get("CI", "").lower() == "true"
T = TypeVar("T")


# ---- waiting for something ------------------------------------------------------------------


class Clock(Protocol):
    """What `eventually` reads the time from and sleeps on (a test of a timeout can pass a
    clock that advances without waiting)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float = ...,
    *,
    what: str = ...,
    every: float = ...,
    clock: Clock | None = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    timeout: float = ...,
    *,
    what: str = ...,
    every: float = ...,
    clock: Clock | None = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float = 10.0,
    *,
    what: str = "",
    every: float = 0.05,
    clock: Clock | None = None,
) -> Any:
    """Call `check` (plain or async) until it returns something true, and return that.

    A check may also assert: an AssertionError means "not yet", and the last one is raised at
    the deadline, so a test fails with the assertion that never held rather than a bare
    timeout. The point is to wait exactly as long as the node needs, never a fixed sleep."""
    clock = clock or MonotonicClock()
    deadline = clock.now() + timeout
    while True:
        try:
            result = check()
            value = await result if inspect.isawaitable(result) else result
            if value:
                return value
            failure = AssertionError(f"not true: {value!r}")
        except AssertionError as exc:
            failure = exc
        if clock.now() >= deadline:
            label = f" waiting for {what}" if what else ""
            raise AssertionError(f"timed out after {timeout:g} s{label}: {failure}") from failure
        await clock.sleep(every)


# ---- tools a test needs ----------------------------------------------------------------------


def missing(what: str) -> NoReturn:
    """A missing tool skips the test on a developer's machine but fails it under CI=true, so a
    CI image without the tool can never pass the tests that need it silently."""
    if IN_CI:
        pytest.fail(f"{what} (required under CI)", pytrace=False)
    pytest.skip(what)


def need_tool(name: str, install: str = "") -> str:
    """The path of the program `name` (a command on PATH or an absolute path): skips locally,
    fails under CI, when it is not installed. `install` says where it comes from."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed" + (f" ({install})" if install else ""))
    return path


def need_file(path: Path, install: str) -> Path:
    """A file a tool installs (e.g. a JavaScript library from `npm ci`): skips locally, fails
    under CI, when it is absent."""
    if not path.exists():
        missing(f"{path} is missing ({install})")
    return path


async def csrf_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers that pass the CSRF check, fetching the cookie first if the client has none."""
    token = client.cookies.get(CSRF_COOKIE)
    if not token:
        await client.get("/healthz")
        token = client.cookies.get(CSRF_COOKIE)
    if not token:
        raise AssertionError(f"the node did not set the {CSRF_COOKIE} cookie")
    return {CSRF_HEADER: token}


async def signup(
    client: httpx.AsyncClient,
    username: str,
    password: str = DEFAULT_PASSWORD,
    display_name: str | None = None,
) -> dict[str, Any]:
    """Sign up a member (the client keeps the session cookie) and return GET /api/me's JSON."""
    response = await client.post(
        "/api/signup",
        json={
            "username": username,
            "password": password,
            "display_name": display_name or username,
        },
        headers=await csrf_headers(client),
    )
    if response.status_code != 201:
        raise AssertionError(f"sign-up failed: {response.status_code} {response.text}")
    me = await client.get("/api/me")
    if me.status_code != 200:
        raise AssertionError(f"GET /api/me after sign-up: {me.status_code} {me.text}")
    data: dict[str, Any] = me.json()
    return data


async def signin(
    client: httpx.AsyncClient, username: str, password: str = DEFAULT_PASSWORD
) -> dict[str, Any]:
    """Sign in an existing member and return GET /api/me's JSON."""
    response = await client.post(
        "/api/signin",
        json={"username": username, "password": password},
        headers=await csrf_headers(client),
    )
    if response.status_code != 200:
        raise AssertionError(f"sign-in failed: {response.status_code} {response.text}")
    data: dict[str, Any] = (await client.get("/api/me")).json()
    return data


async def guest(client: httpx.AsyncClient, display_name: str) -> dict[str, Any]:
    """Become a guest (the client keeps the session cookie) and return GET /api/me's JSON."""
    response = await client.post(
        "/api/guest", json={"display_name": display_name}, headers=await csrf_headers(client)
    )
    if response.status_code != 201:
        raise AssertionError(f"guest creation failed: {response.status_code} {response.text}")
    data: dict[str, Any] = (await client.get("/api/me")).json()
    return data


@asynccontextmanager
async def in_process_node(settings: Settings) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    """A node started in this process (lifespan run, migrations done) and a client for it, for
    tests that also call the node's services directly."""
    app = build_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield app.state.node, client


# ---- people on an in-process node ----------------------------------------------------------------


@dataclass
class Person:
    """One person's HTTP session with a node (their cookie jar) and who they are (`me`: GET
    /api/me's JSON, empty for an anonymous visitor). Unsafe requests carry the CSRF header."""

    client: httpx.AsyncClient
    me: dict[str, Any]

    @property
    def id(self) -> int:
        return int(self.me["id"])

    async def headers(self) -> dict[str, str]:
        return await csrf_headers(self.client)

    def cookie_headers(self, origin: str | None = None) -> dict[str, str]:
        """Their cookies as a WebSocket handshake sends them (and its `Origin`, if given)."""
        cookies = "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())
        headers = {"Cookie": cookies} if cookies else {}
        if origin is not None:
            headers["Origin"] = origin
        return headers

    async def post(self, url: str, json: Any = None) -> httpx.Response:
        return await self.client.post(url, json=json, headers=await self.headers())

    async def patch(self, url: str, json: Any) -> httpx.Response:
        return await self.client.patch(url, json=json, headers=await self.headers())

    async def put(self, url: str, json: Any) -> httpx.Response:
        return await self.client.put(url, json=json, headers=await self.headers())

    async def delete(self, url: str) -> httpx.Response:
        return await self.client.delete(url, headers=await self.headers())

    async def form(self, url: str, data: dict[str, str]) -> httpx.Response:
        """Submit a page form as a browser without JavaScript would (CSRF field included)."""
        token = (await self.headers())[CSRF_HEADER]
        return await self.client.post(url, data={**data, "csrf_token": token})

    async def create(self, **fields: Any) -> dict[str, Any]:
        """A conversation of theirs (POST /api/conversations), as its JSON."""
        response = await self.post("/api/conversations", {"title": "A conversation", **fields})
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data


@dataclass
class World:
    """A node started in this process and the people on it, each with their own client."""

    app: FastAPI
    settings: Settings
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def node(self) -> Node:
        node: Node = self.app.state.node
        return node

    def client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )
        self.clients.append(client)
        return client

    def anonymous(self) -> Person:
        return Person(self.client(), {})

    async def member(
        self, username: str, display_name: str | None = None, *, admin: bool = False
    ) -> Person:
        client = self.client()
        me = await signup(client, username, display_name=display_name)
        if admin:
            async with self.node.db() as db:
                await db.execute(update(User).where(User.id == me["id"]).values(is_admin=True))
                await db.commit()
        return Person(client, me)

    async def guest(self, name: str) -> Person:
        client = self.client()
        return Person(client, await guest(client, name))


W = TypeVar("W", bound=World)


@asynccontextmanager
async def open_world(settings: Settings, kind: type[W]) -> AsyncIterator[W]:
    """A `kind` of World on a node built from `settings` (lifespan run, migrations done)."""
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        world = kind(app, settings)
        try:
            yield world
        finally:
            for client in world.clients:
                await client.aclose()
