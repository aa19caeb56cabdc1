"""Posts stored together: chat messages and backchannel posts that wait for the same
conversation share one transaction (group commit, issue 12).

Storing one post alone takes about eight statements (lock, participant, row, event id, event,
commit...), each a round trip through the event loop to the database; a crowd posting at once
queued one post at a time behind them. `store_together` takes the same few statements for a
whole group: one lock, one read of everyone's participant rows, one INSERT per table, one id
allocation, one INSERT of the events, one commit. Each post is checked exactly as alone, in
arrival order, against what the group stored before it (slow mode reads through the session's
autoflush), and gets its own event and outcome; a refused one stores nothing. Anything else that
goes wrong rolls the whole group back, and its caller (junto.room.actions) stores the posts one
by one, so a post that cannot be stored fails alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.events import log as room_log
from junto.room import backchannel, chat
from junto.room import protocol as p
from junto.room.context import (
    Context,
    lock_conversation,
    new_participant,
    participants,
)
from junto.room.protocol import ActionError
from junto.storage.engine import PoolTimeout
from junto.storage.tables import BackchannelPost, ChatMessage, User
from junto.storage.types import utcnow

if TYPE_CHECKING:
    from junto.events.log import StoredEvent
    from junto.node import Node


@dataclass(frozen=True)
class Job:
    """One action waiting in the write queue for its conversation's writer."""

    node: Node
    conversation_id: int
    actor: User
    action: p.Frame


Row = ChatMessage | BackchannelPost
_Check = Callable[[Context, Any], Awaitable[Row]]
_Announce = Callable[[Any, Context], tuple[str, dict[str, Any]]]

# The actions that may be stored together: how each is checked into a row, and announced.
POSTS: dict[type[p.Frame], tuple[_Check, _Announce]] = {
    p.ChatSend: (chat.new_message, chat.sent),
    p.BackchannelPost: (backchannel.new_post, backchannel.posted),
}


class NotStored(Exception):
    """Storing a group failed before its commit: nothing of it was stored."""


@dataclass
class _Accepted:
    index: int
    ctx: Context
    row: Row
    announce: _Announce


async def store_together(jobs: list[Job]) -> list[list[StoredEvent] | ActionError]:
    """Store the posts of `jobs` (one conversation's) in one transaction; each job's outcome in
    order: its event, or why it was refused.

    Raises ActionError for a refusal of them all (the conversation is gone), PoolTimeout if no
    connection came, NotStored if anything else failed before the commit (the caller may then
    store them one by one), and whatever a failed commit raises (then, as for one post alone,
    whether it was stored is the database's to say, and nothing is tried again). The caller
    holds the conversation's write turn and delivers the events after this returns."""
    node = jobs[0].node
    async with node.db() as db:
        try:
            outcomes, accepted = await _check_and_add(db, jobs)
            events = await _flush_and_announce(db, accepted)
        except (ActionError, PoolTimeout):
            raise
        except Exception as exc:
            raise NotStored(f"{len(jobs)} posts could not be stored together: {exc!r}") from exc
        await db.commit()
    for item, stored in zip(accepted, events, strict=True):
        outcomes[item.index] = [stored]
    return outcomes


async def _check_and_add(
    db: AsyncSession, jobs: list[Job]
) -> tuple[list[list[StoredEvent] | ActionError], list[_Accepted]]:
    """Lock the conversation, check each post as if alone, in order, and add those accepted
    (with the participant rows of people acting for the first time)."""
    node, conversation_id = jobs[0].node, jobs[0].conversation_id
    conv = await lock_conversation(db, conversation_id)
    known = await participants(db, conv.id, (job.actor.id for job in jobs))
    outcomes: list[list[StoredEvent] | ActionError] = []
    accepted: list[_Accepted] = []
    for job in jobs:
        check, announce = POSTS[type(job.action)]
        try:
            me = known.get(job.actor.id) or new_participant(conv, job.actor)
            ctx = Context(node=node, db=db, conv=conv, actor=job.actor, me=me, now=utcnow())
            row = await check(ctx, job.action)
        except ActionError as refused:
            outcomes.append(refused)
            continue
        if known.get(job.actor.id) is not me:  # their first accepted post adds their row
            known[job.actor.id] = me
            db.add(me)
        db.add(row)
        accepted.append(_Accepted(len(outcomes), ctx, row, announce))
        outcomes.append([])  # its event, once stored
    return outcomes, accepted


async def _flush_and_announce(db: AsyncSession, accepted: list[_Accepted]) -> list[StoredEvent]:
    await _number_rows(db, [item.row for item in accepted])
    await db.flush()  # one INSERT per table, and the rows' ids for the events
    if not accepted:
        return []
    new = [
        room_log.NewEvent(*item.announce(item.row, item.ctx), item.ctx.actor.id, item.ctx.now)
        for item in accepted
    ]
    return await room_log.append_many(db, accepted[0].ctx.conv.id, new)


async def _number_rows(db: AsyncSession, rows: list[Row]) -> None:
    """On SQLite, give new rows their ids before the flush, so that it stores them with one
    INSERT per table: SQLAlchemy stores rows whose ids the database chooses one statement each
    on SQLite, whose RETURNING order is not guaranteed (PostgreSQL's INSERT of many rows returns
    them in order). The numbers are the ones SQLite would choose itself (after the largest id),
    and the write lock, held since BEGIN IMMEDIATE, keeps anyone else from taking them."""
    if db.get_bind().dialect.name != "sqlite":
        return
    for table in {type(row) for row in rows}:
        new = [row for row in rows if type(row) is table and row.id is None]
        if not new:
            continue  # stored already, by the autoflush of a slow-mode check
        with db.no_autoflush:  # asking must not flush the very rows being numbered
            last = await db.scalar(select(func.max(table.id)))
        for number, row in enumerate(new, start=(last or 0) + 1):
            row.id = number
