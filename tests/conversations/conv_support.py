"""A real node in-process and several browsers (HTTP clients with their own cookies) on it.

Every test here runs on SQLite and on PostgreSQL (the `database_url` fixture). Test modules
import the `world` fixture from here: this folder has no conftest.py, because the root one is
imported by name as `conftest` (for LiveNode) and a second module of that name would shadow it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]
from fastapi import FastAPI
from sqlalchemy import update

from helpers import csrf_headers, guest, signup
from junto.app import build_app
from junto.config import Settings
from junto.node import Node
from junto.storage.tables import User


@dataclass
class Browser:
    """One person's HTTP client (cookie jar) and who they are."""

    client: httpx.AsyncClient
    me: dict[str, Any]

    async def headers(self) -> dict[str, str]:
        return await csrf_headers(self.client)

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
        token = (await self.headers())["X-CSRF-Token"]
        return await self.client.post(url, data={**data, "csrf_token": token})

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"title": "A conversation", **fields}
        response = await self.post("/api/conversations", body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data


@dataclass
class World:
    app: FastAPI
    clients: list[httpx.AsyncClient]

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

    def anonymous(self) -> Browser:
        return Browser(self.client(), {})

    async def member(self, username: str, *, admin: bool = False) -> Browser:
        client = self.client()
        me = await signup(client, username)
        if admin:
            async with self.node.db() as db:
                await db.execute(update(User).where(User.id == me["id"]).values(is_admin=True))
                await db.commit()
        return Browser(client, me)

    async def guest(self, name: str) -> Browser:
        client = self.client()
        return Browser(client, await guest(client, name))


@pytest.fixture(name="world")
async def world_fixture(settings: Settings) -> AsyncIterator[World]:
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=60):
        w = World(app, [])
        try:
            yield w
        finally:
            for client in w.clients:
                await client.aclose()
