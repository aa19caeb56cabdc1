"""One room action in progress, and the checks every kind of action shares.

`Context` holds the locked conversation, the actor and their participant row for the length of
one transaction (junto.room.actions.dispatch opens it); `emit` appends a room event in that
transaction, delivered after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from junto import user_text
from junto.enums import Role, Visibility
from junto.events import log as room_log
from junto.room.protocol import ActionError
from junto.room.text import clean_text
from junto.room.views import MODERATOR_ROLES, POSTING_STATES
from junto.storage.tables import BackchannelPost, ChatMessage, Conversation, Participant, User
from junto.storage.types import utcnow

if TYPE_CHECKING:
    from junto.events.log import StoredEvent
    from junto.node import Node


@dataclass
class Context:
    """One action in progress: the locked conversation, the actor and their participant row."""

    node: Node
    db: AsyncSession
    conv: Conversation
    actor: User
    me: Participant
    now: datetime
    events: list[StoredEvent] = field(default_factory=list)

    @property
    def is_moderator(self) -> bool:
        # Node admins may moderate any conversation (as junto.conversations.can_manage).
        return self.actor.is_admin or self.me.role in MODERATOR_ROLES

    @property
    def is_host(self) -> bool:
        return self.actor.is_admin or self.me.role == Role.HOST

    async def emit(self, type_: str, data: dict[str, Any]) -> None:
        event = await room_log.append(
            self.db, self.conv.id, type_, data, self.actor.id, at=self.now
        )
        self.events.append(event)


async def open_action(node: Node, db: AsyncSession, conversation_id: int, actor: User) -> Context:
    """Lock the conversation for this action and load (or create) the actor's participant row."""
    conv = await lock_conversation(db, conversation_id)
    me = await db.get(Participant, (conv.id, actor.id))
    if me is None:
        me = new_participant(conv, actor)
        db.add(me)
        await db.flush()
    return Context(node=node, db=db, conv=conv, actor=actor, me=me, now=utcnow())


async def lock_conversation(db: AsyncSession, conversation_id: int) -> Conversation:
    """Open the transaction holding the conversation's lock, and read the conversation.

    Holding the lock from the first read serialises actions within one conversation, so checks
    (slow mode, last host, reaction toggles) cannot race with another process's writes. The event
    id allocation takes the same lock anyway (events/log.py), so this costs no concurrency.
    SQLite's driver would open the transaction only at the first write, after our reads, so we
    open it ourselves with BEGIN IMMEDIATE (take the write lock now, waiting up to busy_timeout).
    """
    if db.get_bind().dialect.name == "sqlite":
        await db.execute(text("BEGIN IMMEDIATE"))
    conv = (
        await db.execute(
            select(Conversation).where(Conversation.id == conversation_id).with_for_update()
        )
    ).scalar_one_or_none()
    if conv is None:
        raise ActionError("not_found", "this conversation no longer exists")
    return conv


async def participants(
    db: AsyncSession, conversation_id: int, user_ids: Iterable[int]
) -> dict[int, Participant]:
    """The participant rows of these people that exist, by user id (one statement)."""
    rows = await db.scalars(
        select(Participant).where(
            Participant.conversation_id == conversation_id,
            Participant.user_id.in_(sorted(set(user_ids))),
        )
    )
    return {row.user_id: row for row in rows}


def new_participant(conv: Conversation, actor: User) -> Participant:
    """The audience row someone acting for the first time gets (the caller adds it)."""
    if conv.visibility == Visibility.INVITE_ONLY and not actor.is_admin:
        # A participant row is what admits people to an invite-only conversation; acting in
        # one must never create that admission.
        raise ActionError("not_found", "no such conversation")
    return Participant(conversation_id=conv.id, user_id=actor.id, role=Role.AUDIENCE, blocked=False)


def require_state(ctx: Context) -> None:
    if ctx.conv.state not in POSTING_STATES:
        raise ActionError(
            "invalid_state", f"expected scheduled or live, got {ctx.conv.state.value}"
        )


def require_not_blocked(ctx: Context) -> None:
    if ctx.me.blocked:
        raise ActionError("blocked", "a host has blocked you from posting in this conversation")


def require_moderator(ctx: Context, doing: str) -> None:
    if not ctx.is_moderator:
        raise ActionError("forbidden", f"only hosts and co-hosts can {doing}")


def clean_body(raw: str, limit: int) -> str:
    body = clean_text(raw)
    if not body:
        raise ActionError("bad_message", "body: expected some text, got only whitespace")
    problem = user_text.unfit_character(body, allow="\n")  # what clean_text cannot drop
    if problem is not None:
        raise ActionError("bad_message", f"body: {problem}")
    if len(body) > limit:
        raise ActionError(
            "too_large", f"body: expected at most {limit} characters, got {len(body)}"
        )
    return body


async def target(ctx: Context, user_id: int, *, admits: bool = False) -> tuple[User, Participant]:
    """The person an action is about, with their participant row (created as audience).

    In an invite-only conversation a participant row IS the admission (conversations.can_view),
    so only actions that deliberately let someone in (`admits`: bringing them on stage, giving
    them a role, as an invite would) may create one. Blocking, unblocking or "removing" an
    outsider must not quietly give them the right to read the conversation.
    """
    user = await ctx.db.get(User, user_id)
    if user is None:
        raise ActionError("not_found", f"no person with id {user_id}")
    if user_id == ctx.actor.id:
        return user, ctx.me
    row = await ctx.db.get(Participant, (ctx.conv.id, user_id))
    if row is None and ctx.conv.visibility == Visibility.INVITE_ONLY and not admits:
        raise ActionError(
            "not_found", f"expected a participant of this conversation, got person {user_id}"
        )
    if row is None:
        row = Participant(
            conversation_id=ctx.conv.id, user_id=user_id, role=Role.AUDIENCE, blocked=False
        )
        ctx.db.add(row)
        await ctx.db.flush()
    return user, row


async def soft_delete(
    ctx: Context, row: ChatMessage | BackchannelPost, noun: str, event: str, id_key: str
) -> None:
    """Delete a chat message or backchannel post: its author may, and so may moderators."""
    if row.author_id != ctx.actor.id and not ctx.is_moderator:
        raise ActionError("forbidden", f"only the author, hosts and co-hosts can delete a {noun}")
    # The row stays (with who deleted it and when) so moderation can be audited.
    row.deleted_at = ctx.now
    row.deleted_by = ctx.actor.id
    await ctx.db.flush()
    await ctx.emit(event, {id_key: row.id, "by": ctx.actor.id})
