"""The durable room stream: numbered events stored before they are delivered.

Ids come from `conversations.last_seq`: `UPDATE ... SET last_seq = last_seq + 1 RETURNING
last_seq` runs inside the caller's transaction and holds that conversation's row lock (PostgreSQL)
or the database write lock (SQLite) until commit. So within a conversation ids are dense (a
rolled-back transaction gives its id back) and commit order equals id order: once event n is
committed, every event below n is committed too. The hub's gap filling relies on that.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import ConversationState
from junto.storage.tables import Conversation, RoomEvent
from junto.storage.types import utcnow


def iso_ms(moment: datetime) -> str:
    """`2026-11-26T09:30:00.123Z`: the timestamp form used in every frame."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# The type of a room event's stand-in for a reader who may not read it (who may not:
# junto.conversations.withheld_events). It keeps the event's id and time and nothing else:
# ids stay dense for every reader, since clients take a gap for lost events and resume
# (docs/protocol.md), so a withheld event is replaced, never left out.
WITHHELD = "withheld"


def withheld_frame(event_id: int, ts: str) -> bytes:
    """The frame that stands in for event `event_id` for someone who may not read it."""
    return orjson.dumps({"type": WITHHELD, "stream": "room", "id": event_id, "ts": ts, "data": {}})


@dataclass(frozen=True)
class StoredEvent:
    """One room-stream event as stored and as sent to clients."""

    conversation_id: int
    id: int
    type: str
    ts: str
    data: dict[str, Any]

    def frame(self) -> bytes:
        """The JSON stream frame of docs/protocol.md (serialised once, then cached)."""
        return self._frame

    @functools.cached_property
    def _frame(self) -> bytes:
        # cached_property writes straight into __dict__, which a frozen dataclass allows.
        return orjson.dumps(
            {"type": self.type, "stream": "room", "id": self.id, "ts": self.ts, "data": self.data}
        )


@dataclass(frozen=True)
class NewEvent:
    """An event to append: its type, data, who caused it and when (see `append`)."""

    type: str
    data: dict[str, Any]
    actor_id: int | None
    at: datetime | None = None


async def append(
    db: AsyncSession,
    conversation_id: int,
    type: str,
    data: dict[str, Any],
    actor_id: int | None,
    *,
    at: datetime | None = None,
) -> StoredEvent:
    """Allocate the next id and store the event in the caller's transaction.

    `at` is the moment of the action, when it wrote its rows at that moment too: the event's
    `ts` is then the time a snapshot shows (a raised hand's `hand_raised_at`), so a client that
    applies the event agrees with one that loads the page afterwards.

    The caller commits and only then calls `node.hub.deliver(event)`: an event is never
    delivered before it is durable, so a resuming client can always read it back.
    """
    (event,) = await append_many(db, conversation_id, [NewEvent(type, data, actor_id, at)])
    return event


async def append_many(
    db: AsyncSession, conversation_id: int, new: Sequence[NewEvent]
) -> list[StoredEvent]:
    """`append` for several events at once, given consecutive ids in order: two statements,
    however many events (group commit, junto.storage.engine.WriteQueue)."""
    if not new:
        return []
    allocate = (
        update(Conversation)
        .where(Conversation.id == conversation_id)
        # Keep updated_at as it is: it means "metadata changed", not "something was posted".
        .values(last_seq=Conversation.last_seq + len(new), updated_at=Conversation.updated_at)
        .returning(Conversation.last_seq)
        .execution_options(synchronize_session="fetch")
    )
    last = (await db.execute(allocate)).scalar_one_or_none()
    if last is None:
        raise LookupError(f"expected an existing conversation, got id {conversation_id}")
    first = int(last) - len(new) + 1
    now = utcnow()
    moments = [item.at or now for item in new]
    await db.execute(
        insert(RoomEvent),
        [
            {
                "conversation_id": conversation_id,
                "seq": first + i,
                "type": item.type,
                "actor_id": item.actor_id,
                "payload": orjson.dumps(item.data).decode(),
                "created_at": moment,
            }
            for i, (item, moment) in enumerate(zip(new, moments, strict=True))
        ],
    )
    return [
        StoredEvent(conversation_id, first + i, item.type, iso_ms(moment), item.data)
        for i, (item, moment) in enumerate(zip(new, moments, strict=True))
    ]


async def events_after(
    db: AsyncSession,
    conversation_id: int,
    after_id: int,
    limit: int,
    withhold: frozenset[str] = frozenset(),
) -> list[StoredEvent]:
    """Up to `limit` committed events with id > `after_id`, in id order; those whose type is
    in `withhold` come as their stand-ins (type `WITHHELD`, no data)."""
    rows = await db.execute(
        select(RoomEvent.seq, RoomEvent.type, RoomEvent.payload, RoomEvent.created_at)
        .where(RoomEvent.conversation_id == conversation_id, RoomEvent.seq > after_id)
        .order_by(RoomEvent.seq)
        .limit(limit)
    )
    return [
        StoredEvent(conversation_id, int(seq), WITHHELD, iso_ms(created), {})
        if type_ in withhold
        else StoredEvent(conversation_id, int(seq), type_, iso_ms(created), orjson.loads(payload))
        for seq, type_, payload, created in rows
    ]


async def position(db: AsyncSession, conversation_id: int) -> tuple[int, ConversationState | None]:
    """(latest committed id, the conversation's state as of that id): read together, so a
    reader that follows the stream from there knows which state each later event comes in.
    (-1, None) if there is no such conversation."""
    row = (
        await db.execute(
            select(Conversation.last_seq, Conversation.state).where(
                Conversation.id == conversation_id
            )
        )
    ).one_or_none()
    return (-1, None) if row is None else (int(row[0]), row[1])


async def last_id(db: AsyncSession, conversation_id: int) -> int:
    """The id of the latest committed event (0 if none), or -1 if there is no such conversation."""
    value = await db.scalar(select(Conversation.last_seq).where(Conversation.id == conversation_id))
    return -1 if value is None else int(value)
