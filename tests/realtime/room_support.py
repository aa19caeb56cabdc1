"""A real node (app lifespan, real database, real hub) and people and conversations in it.

Used by the actions and room API tests: `dispatch` is called exactly as the WebSocket hub calls
it, with `app.state.node`, and the HTTP client talks to the same in-process app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from junto import accounts, conversations
from junto.app import build_app
from junto.config import Settings
from junto.conversation_fields import ConversationCreate
from junto.enums import ConversationState, Role, Visibility
from junto.events.log import StoredEvent
from junto.node import Node
from junto.room.actions import dispatch
from junto.storage.engine import PoolTimeout
from junto.storage.tables import (
    BackchannelPost,
    ChatMessage,
    Conversation,
    Participant,
    RoomEvent,
    User,
)
from junto.storage.types import utcnow


@dataclass
class Room:
    """One running node with one conversation and its host."""

    node: Node
    client: httpx.AsyncClient
    host: User
    conv: Conversation
    _names: list[str] = field(default_factory=list)

    async def member(self, name: str, *, admin: bool = False) -> User:
        async with self.node.db() as db:
            user = await insert_member(db, name, admin=admin)
            await db.commit()
            return user

    async def guest(self, name: str) -> User:
        async with self.node.db() as db:
            user = await accounts.create_guest(db, name)
            await db.commit()
            return user

    async def act(self, actor: User | None, **frame: Any) -> StoredEvent | None:
        return await dispatch(self.node, self.conv, actor, frame)

    async def set_role(self, user: User, role: Role) -> None:
        async with self.node.db() as db:
            row = await db.get(Participant, (self.conv.id, user.id))
            if row is None:
                db.add(Participant(conversation_id=self.conv.id, user_id=user.id, role=role))
            else:
                row.role = role
            await db.commit()

    async def set_state(self, state: ConversationState, *, started_ago: float = 0.0) -> None:
        """Put the conversation in `state` directly (the state machine is tested elsewhere)."""
        now = utcnow()
        values: dict[str, Any] = {"state": state}
        if state != ConversationState.SCHEDULED:
            values["started_at"] = now - timedelta(seconds=started_ago)
        if state == ConversationState.ENDED:
            values["ended_at"] = now
        async with self.node.db() as db:
            await db.execute(
                update(Conversation).where(Conversation.id == self.conv.id).values(values)
            )
            await db.commit()
        await self.refresh()

    async def refresh(self) -> Conversation:
        async with self.node.db() as db:
            conv = await db.get(Conversation, self.conv.id)
            assert conv is not None
            self.conv = conv
            return conv

    async def participant(self, user: User) -> Participant | None:
        async with self.node.db() as db:
            return await db.get(Participant, (self.conv.id, user.id))

    async def last_seq(self) -> int:
        return int((await self.refresh()).last_seq)

    async def event_ids(self) -> list[int]:
        async with self.node.db() as db:
            result = await db.execute(
                select(RoomEvent.seq)
                .where(RoomEvent.conversation_id == self.conv.id)
                .order_by(RoomEvent.seq)
            )
            return [int(seq) for seq in result.scalars()]

    async def chat_row(self, message_id: int) -> ChatMessage:
        async with self.node.db() as db:
            row = await db.get(ChatMessage, message_id)
            assert row is not None
            return row

    async def post_row(self, post_id: int) -> BackchannelPost:
        async with self.node.db() as db:
            row = await db.get(BackchannelPost, post_id)
            assert row is not None
            return row

    async def count_chat(self) -> int:
        async with self.node.db() as db:
            result = await db.execute(
                select(ChatMessage.id).where(ChatMessage.conversation_id == self.conv.id)
            )
            return len(result.all())


async def insert_member(db: AsyncSession, name: str, *, admin: bool = False) -> User:
    """A member row without a usable password: these tests never sign in as them, and argon2
    hashing (deliberately slow) would dominate the run time. Sign-up is tested in tests/accounts.
    """
    user = User(
        username=name,
        password_hash="!unusable",
        display_name=name.title(),
        colour=accounts.PALETTE[0],
        bio="",
        is_admin=admin,
        is_guest=False,
    )
    db.add(user)
    await db.flush()
    user.colour = accounts.palette_colour(user.id)
    await db.flush()
    return user


async def open_room(
    settings: Settings,
    *,
    state: ConversationState = ConversationState.LIVE,
    visibility: Visibility = Visibility.PUBLIC,
) -> AsyncIterator[Room]:
    app = build_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        node: Node = app.state.node
        async with node.db() as db:
            host = await insert_member(db, "hana")
            conv = await conversations.create(
                db,
                ConversationCreate(
                    title="How cities breathe", visibility=visibility, tags=["cities"]
                ),
                host,
            )
        room = Room(node=node, client=client, host=host, conv=conv)
        if state != ConversationState.SCHEDULED:
            await room.set_state(state)
        yield room


@pytest.fixture(name="room")
async def room_fixture(settings: Settings) -> AsyncIterator[Room]:
    """A live public conversation hosted by Hana, on SQLite and on PostgreSQL."""
    async for value in open_room(settings):
        yield value


@asynccontextmanager
async def taken_connections(room: Room, leave_free: int = 0) -> AsyncIterator[None]:
    """Check out every connection the pool will give (then hand `leave_free` back)."""
    held: list[AsyncConnection] = []
    try:
        while True:
            try:
                held.append(await room.node.engine.connect())
            except PoolTimeout:
                break
        for _ in range(leave_free):
            await held.pop().close()
        yield
    finally:
        for conn in held:
            await conn.close()
