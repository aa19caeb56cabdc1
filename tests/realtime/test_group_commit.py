"""Posts that arrive together are stored together (issue 12, "posting under load").

A crowd posting at once used to cost one transaction of about eight statements per post, one post
at a time; under load every statement waited for the busy event loop, so posts queued for
seconds. Posts waiting for the same conversation now share one transaction (group commit). What
people notice must not change: each post is stored once, gets its own event and answer, events
are delivered once, in id order, only after they are stored, and a post that is refused or fails
refuses only itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from room_support import (  # noqa: F401 - the `room` fixture
    Room,
    open_room,
    room_fixture,
    taken_connections,
)
from sqlalchemy import delete, event, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import eventually
from junto.config import Settings
from junto.enums import Role
from junto.events.log import StoredEvent
from junto.realtime.room import parse_wire, room_channel
from junto.room.protocol import ActionError
from junto.storage.tables import BackchannelPost, ChatMessage, RoomEvent, User

PEOPLE = 20
EACH = 2  # within a guest's burst of 5


@dataclass
class Work:
    """What the database was asked to do while a block ran."""

    statements: int = 0
    commits: int = 0


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Work]:
    work = Work()

    def statement(*_: Any) -> None:
        work.statements += 1

    def commit(_conn: Connection) -> None:
        work.commits += 1

    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    event.listen(engine.sync_engine, "commit", commit)
    try:
        yield work
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", statement)
        event.remove(engine.sync_engine, "commit", commit)


def frame(i: int, k: int) -> dict[str, Any]:
    kind = "chat.send" if (i + k) % 2 == 0 else "backchannel.post"
    return {"type": kind, "body": f"post {k} from guest {i}"}


def body_of(stored: StoredEvent) -> str:
    item = stored.data.get("message") or stored.data["post"]
    return str(item["body"])


async def act_all(
    room: Room, sends: list[tuple[User, dict[str, Any]]]
) -> list[StoredEvent | BaseException | None]:
    """Send every frame at once, as a crowd's requests arrive together."""
    return await asyncio.gather(
        *(room.act(actor, **sent) for actor, sent in sends), return_exceptions=True
    )


async def crowd(room: Room) -> list[tuple[User, dict[str, Any]]]:
    people = [await room.guest(f"guest {i}") for i in range(PEOPLE)]
    return [(person, frame(i, k)) for k in range(EACH) for i, person in enumerate(people)]


async def stored_bodies(room: Room) -> list[str]:
    async with room.node.db() as db:
        chat = (
            await db.scalars(
                select(ChatMessage.body).where(ChatMessage.conversation_id == room.conv.id)
            )
        ).all()
        posts = (
            await db.scalars(
                select(BackchannelPost.body).where(BackchannelPost.conversation_id == room.conv.id)
            )
        ).all()
    return sorted([*chat, *posts])


@asynccontextmanager
async def listening(room: Room) -> AsyncIterator[list[tuple[int, bytes, bool]]]:
    """Every event published for the room: (id, frame, whether it was already stored then)."""
    heard: list[tuple[int, bytes, bool]] = []
    subscription = await room.node.pubsub.subscribe(room_channel(room.conv.id))

    async def listen() -> None:
        async for data in subscription:
            event_id, _type, sent = parse_wire(data)
            async with room.node.db() as db:
                row = await db.scalar(
                    select(RoomEvent.seq).where(
                        RoomEvent.conversation_id == room.conv.id, RoomEvent.seq == event_id
                    )
                )
            heard.append((event_id, sent, row is not None))

    task = asyncio.create_task(listen())
    try:
        yield heard
    finally:
        await subscription.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_posts_sent_together_share_a_few_transactions(room: Room) -> None:
    sends = await crowd(room)
    with counting(room.node.engine) as work:
        answers = await act_all(room, sends)
    stored = [a for a in answers if isinstance(a, StoredEvent)]
    assert len(stored) == len(sends), [a for a in answers if not isinstance(a, StoredEvent)]
    # One transaction per post made forty commits of about eight statements each.
    assert work.commits <= 4, f"{work.commits} transactions for {len(sends)} posts"
    assert work.statements <= len(sends), f"{work.statements} statements for {len(sends)} posts"


async def test_each_post_of_a_group_is_stored_once_and_answered_with_its_own_event(
    room: Room,
) -> None:
    sends = await crowd(room)
    before = await room.last_seq()
    answers = await act_all(room, sends)
    assert all(isinstance(a, StoredEvent) for a in answers), answers
    events = [a for a in answers if isinstance(a, StoredEvent)]
    # Everyone's answer is the event of their own post, of the right kind.
    for (actor, sent), answer in zip(sends, events, strict=True):
        assert body_of(answer) == sent["body"]
        assert answer.type == (
            "chat.message" if sent["type"] == "chat.send" else "backchannel.post"
        )
        item = answer.data.get("message") or answer.data["post"]
        assert item["author"]["id"] == actor.id
    # Ids are dense, one per post, in the order the posts arrived.
    assert [e.id for e in events] == list(range(before + 1, before + 1 + len(sends)))
    assert await room.event_ids() == list(range(1, before + 1 + len(sends)))
    assert await stored_bodies(room) == sorted(sent["body"] for _, sent in sends)
    # Everyone who posted is a participant now, as after a single post.
    for actor, _ in sends:
        participant = await room.participant(actor)
        assert participant is not None and participant.role == Role.AUDIENCE


async def test_a_group_is_delivered_once_in_order_and_only_once_stored(room: Room) -> None:
    sends = await crowd(room)
    before = await room.last_seq()
    async with listening(room) as heard:
        answers = await act_all(room, sends)
        expected = list(range(before + 1, before + 1 + len(sends)))
        await eventually(lambda: len(heard) >= len(sends), what="every event delivered")
    assert [event_id for event_id, _, _ in heard] == expected
    assert all(was_stored for _, _, was_stored in heard), "an event was delivered before commit"
    events = {a.id: a for a in answers if isinstance(a, StoredEvent)}
    for event_id, sent, _ in heard:
        assert orjson.loads(sent)["data"] == events[event_id].data


async def test_a_refused_post_refuses_only_itself(room: Room) -> None:
    sends = await crowd(room)
    blocked = sends[3][0]
    await room.act(room.host, type="participant.block", user_id=blocked.id)
    too_long = {"type": "backchannel.post", "body": "x" * 281}
    sends.insert(7, (sends[7][0], too_long))
    answers = await act_all(room, sends)
    for (actor, sent), answer in zip(sends, answers, strict=True):
        if actor.id == blocked.id:
            assert isinstance(answer, ActionError) and answer.code == "blocked", answer
        elif sent is too_long:
            assert isinstance(answer, ActionError) and answer.code == "too_large", answer
        else:
            assert isinstance(answer, StoredEvent) and body_of(answer) == sent["body"], answer
    accepted = [
        sent["body"] for actor, sent in sends if actor.id != blocked.id and sent is not too_long
    ]
    assert await stored_bodies(room) == sorted(accepted)
    # Ids stay dense: a refused post takes none.
    assert await room.event_ids() == list(range(1, await room.last_seq() + 1))


async def test_slow_mode_counts_a_message_earlier_in_the_same_group(room: Room) -> None:
    await room.act(room.host, type="room.settings", slow_mode_seconds=30)
    sends = await crowd(room)  # a chat message and a backchannel post from each guest
    ana = sends[0][0]
    sends += [(ana, {"type": "chat.send", "body": f"ana again {k}"}) for k in range(2)]
    answers = await act_all(room, sends)
    later = [
        answer
        for (actor, sent), answer in zip(sends, answers, strict=True)
        if actor.id == ana.id and sent["body"].startswith("ana again")
    ]
    # Ana's first chat message passes; the two after it wait out slow mode, as they would alone.
    assert all(isinstance(a, ActionError) and a.code == "slow_mode" for a in later), later
    others = [answer for answer in answers if not any(answer is a for a in later)]
    assert all(isinstance(a, StoredEvent) for a in others), others


async def test_a_post_that_fails_to_store_fails_alone(room: Room) -> None:
    sends = await crowd(room)
    # A guest account removed (as housekeeping removes quiet guests) while its posts are on
    # their way: storing them breaks the author's foreign key.
    gone = sends[5][0]
    async with room.node.db() as db:
        await db.execute(delete(User).where(User.id == gone.id))
        await db.commit()
    answers = await act_all(room, sends)
    for (actor, sent), answer in zip(sends, answers, strict=True):
        if actor.id == gone.id:
            assert isinstance(answer, Exception) and not isinstance(answer, ActionError), answer
        else:
            assert isinstance(answer, StoredEvent) and body_of(answer) == sent["body"], answer
    assert await stored_bodies(room) == sorted(s["body"] for a, s in sends if a.id != gone.id)
    assert await room.event_ids() == list(range(1, await room.last_seq() + 1))


@pytest.fixture(name="impatient")
async def impatient_room(settings: Settings) -> AsyncIterator[Room]:
    async for value in open_room(settings.with_overrides(db_wait_seconds=0.5)):
        yield value


async def test_a_group_without_a_connection_is_refused_as_busy_and_stores_nothing(
    impatient: Room,
) -> None:
    room = impatient
    sends = await crowd(room)
    before = await room.last_seq()
    async with taken_connections(room):
        answers = await act_all(room, sends)
    assert all(isinstance(a, ActionError) and a.code == "busy" for a in answers), answers
    assert await room.last_seq() == before
    assert await stored_bodies(room) == []


async def test_a_post_whose_sender_gave_up_before_its_turn_is_not_stored(room: Room) -> None:
    ana, bo = await room.guest("Ana"), await room.guest("Bo")
    async with room.node.writes.turn(room.conv.id):  # someone else is writing meanwhile
        # A raised hand goes alone, so Bo's post waits behind it in the queue.
        first = asyncio.create_task(room.act(ana, type="hand.raise"))
        second = asyncio.create_task(room.act(bo, type="backchannel.post", body="given up"))
        await eventually(lambda: room.node.writes.queued(room.conv.id) == 1, what="Bo queued")
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
    raised = await first
    assert raised is not None and raised.data["user"]["id"] == ana.id
    assert await stored_bodies(room) == []
    assert await room.event_ids() == list(range(1, raised.id + 1))
    assert await room.last_seq() == raised.id
