"""What people do in a room: every client action of docs/protocol.md, checked, stored, announced.

`dispatch` is the single entry point for the WebSocket hub and the REST mirror, so the rules are
the same whichever way a message arrives. For each action, in order: the frame is validated
(`bad_message`), the sender must have an identity (`not_signed_in`), content actions are
rate-limited per person (`rate_limited`), and then, inside one transaction that holds the
conversation's lock: role permission (`forbidden`), block (`blocked`), conversation state
(`invalid_state`), size (`too_large`) and slow mode (`slow_mode`). The entity rows and the room
events are written in that same transaction, committed, and only then delivered to the hub, so
no client ever sees an event that was not stored, and a refused action stores nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from junto import user_text
from junto.accounts import person
from junto.conversations import iso
from junto.events import delivery
from junto.events import log as room_log
from junto.realtime import protocol as p
from junto.realtime.protocol import ActionError
from junto.realtime.text import clean_text, find_hashtags
from junto.realtime.views import (
    MODERATOR_ROLES,
    POSTING_STATES,
    message_dict,
    post_dict,
    reaction_counts,
    room_settings,
    snapshot,
    viewer_info,
)
from junto.storage.engine import BUSY_RETRY_AFTER_S, PoolTimeout
from junto.storage.tables import (
    CONSENT_STATEMENT,
    BackchannelPost,
    ChatMessage,
    Conversation,
    MediaConsent,
    Participant,
    Reaction,
    Role,
    User,
    Visibility,
)
from junto.storage.types import utcnow

if TYPE_CHECKING:
    from junto.events.log import StoredEvent
    from junto.node import Node

__all__ = ["ActionError", "dispatch", "snapshot", "viewer_info"]

log = logging.getLogger("junto.realtime.actions")


# ---- the entry point ---------------------------------------------------------------------------


async def dispatch(
    node: Node, conversation: Conversation, actor: User | None, frame: dict[str, Any]
) -> StoredEvent | None:
    """Carry out one client action; returns its (last) room event, or None if nothing changed.

    Raises ActionError for anything refused; then nothing has been stored.
    """
    action = p.parse_client_frame(frame)
    if type(action) not in _HANDLERS:
        # hello, ping, and media signaling, which only makes sense on the socket that carries
        # the media session (junto.realtime.signaling).
        raise ActionError("bad_message", f"expected a room action, got {action.type}")
    if actor is None:
        raise ActionError(
            "not_signed_in", "sign in or choose a guest name to take part in the conversation"
        )
    _rate_limit(node, actor, action)
    handler = _HANDLERS[type(action)]
    # Wait for this conversation's turn (the database's, on SQLite) before taking a connection:
    # the lock taken in `_open` would make us wait anyway, and waiting here holds no connection
    # that readers need (junto.storage.engine.WriteQueue, issue 12).
    async with node.writes.turn(conversation.id):
        try:
            async with node.db() as db:
                ctx = await _open(node, db, conversation.id, actor)
                await handler(ctx, action)
                await db.commit()
        except PoolTimeout:
            # Nothing was stored: the connection is taken before the first statement.
            raise ActionError(
                "busy", "the node is busy; try again in a moment", retry_after=BUSY_RETRY_AFTER_S
            ) from None
    await delivery.deliver(node.hub, ctx.events)
    return ctx.events[-1] if ctx.events else None


@dataclass
class _Context:
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
        event = await room_log.append(self.db, self.conv.id, type_, data, self.actor.id)
        self.events.append(event)


async def _open(node: Node, db: AsyncSession, conversation_id: int, actor: User) -> _Context:
    """Lock the conversation for this action and load (or create) the actor's participant row.

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
    me = await db.get(Participant, (conv.id, actor.id))
    if me is None:
        if conv.visibility == Visibility.INVITE_ONLY and not actor.is_admin:
            # A participant row is what admits people to an invite-only conversation; acting in
            # one must never create that admission.
            raise ActionError("not_found", "no such conversation")
        me = Participant(
            conversation_id=conv.id, user_id=actor.id, role=Role.AUDIENCE, blocked=False
        )
        db.add(me)
        await db.flush()
    return _Context(node=node, db=db, conv=conv, actor=actor, me=me, now=utcnow())


# ---- shared checks -----------------------------------------------------------------------------

# Actions anyone can repeat to make noise; moderation is gated by role instead.
_RATE_KEYS: dict[type[p.Frame], str] = {
    p.ChatSend: "post",
    p.ChatEdit: "post",
    p.BackchannelPost: "post",
    p.BackchannelReact: "react",
    p.HandRaise: "hand",
    p.HandLower: "hand",
}


def _rate_limit(node: Node, actor: User, action: p.Frame) -> None:
    """Token buckets per person (guests stricter), checked before touching the database."""
    family = _RATE_KEYS.get(type(action))
    if family is None:
        return
    wait = node.posting_limits.take(f"{actor.id}:{family}", guest=actor.is_guest)
    if wait > 0:
        raise ActionError(
            "rate_limited", f"too many messages: try again in {wait:.1f} s", retry_after=wait
        )


def _require_state(ctx: _Context) -> None:
    if ctx.conv.state not in POSTING_STATES:
        raise ActionError(
            "invalid_state", f"expected scheduled or live, got {ctx.conv.state.value}"
        )


def _require_not_blocked(ctx: _Context) -> None:
    if ctx.me.blocked:
        raise ActionError("blocked", "a host has blocked you from posting in this conversation")


def _require_moderator(ctx: _Context, doing: str) -> None:
    if not ctx.is_moderator:
        raise ActionError("forbidden", f"only hosts and co-hosts can {doing}")


def _clean_body(raw: str, limit: int) -> str:
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


async def _target(ctx: _Context, user_id: int, *, admits: bool = False) -> tuple[User, Participant]:
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


# ---- chat --------------------------------------------------------------------------------------


async def _chat_send(ctx: _Context, action: p.ChatSend) -> None:
    _require_not_blocked(ctx)
    _require_state(ctx)
    body = _clean_body(action.body, ctx.node.settings.limits.chat_max_chars)
    await _check_slow_mode(ctx)
    message = ChatMessage(
        conversation_id=ctx.conv.id, author_id=ctx.actor.id, body=body, created_at=ctx.now
    )
    ctx.db.add(message)
    await ctx.db.flush()
    await ctx.emit("chat.message", {"message": message_dict(message, ctx.actor)})


async def _check_slow_mode(ctx: _Context) -> None:
    """Slow mode: each person waits `slow_mode_seconds` after their last chat message."""
    seconds = ctx.conv.slow_mode_seconds
    if seconds <= 0 or ctx.is_moderator:
        return
    last = (
        await ctx.db.execute(
            # Deleted messages count too, or deleting one would be a way round slow mode.
            select(func.max(ChatMessage.created_at)).where(
                ChatMessage.conversation_id == ctx.conv.id,
                ChatMessage.author_id == ctx.actor.id,
            )
        )
    ).scalar_one_or_none()
    if last is None:
        return
    wait = seconds - (ctx.now - last).total_seconds()
    if wait > 0:
        raise ActionError(
            "slow_mode",
            f"slow mode is on: you can send your next message in {int(wait + 0.999)} s",
            retry_after=wait,
        )


async def _chat_message(ctx: _Context, message_id: int) -> ChatMessage:
    message = await ctx.db.get(ChatMessage, message_id)
    if message is None or message.conversation_id != ctx.conv.id or message.deleted_at is not None:
        raise ActionError("not_found", f"no message {message_id} in this conversation")
    return message


async def _chat_edit(ctx: _Context, action: p.ChatEdit) -> None:
    message = await _chat_message(ctx, action.message_id)
    if message.author_id != ctx.actor.id:
        raise ActionError("forbidden", "only the author can edit a message")
    _require_not_blocked(ctx)
    _require_state(ctx)
    body = _clean_body(action.body, ctx.node.settings.limits.chat_max_chars)
    if body == message.body:
        return
    message.body = body
    message.edited_at = ctx.now
    await ctx.db.flush()
    await ctx.emit(
        "chat.edited",
        {"message_id": message.id, "body": body, "edited_at": iso(message.edited_at)},
    )


async def _chat_delete(ctx: _Context, action: p.ChatDelete) -> None:
    # Allowed in any state: a host may clean up an ended conversation's archive.
    message = await _chat_message(ctx, action.message_id)
    await _soft_delete(ctx, message, "message", "chat.deleted", "message_id")


async def _soft_delete(
    ctx: _Context, row: ChatMessage | BackchannelPost, noun: str, event: str, id_key: str
) -> None:
    """Delete a chat message or backchannel post: its author may, and so may moderators."""
    if row.author_id != ctx.actor.id and not ctx.is_moderator:
        raise ActionError("forbidden", f"only the author, hosts and co-hosts can delete a {noun}")
    # The row stays (with who deleted it and when) so moderation can be audited.
    row.deleted_at = ctx.now
    row.deleted_by = ctx.actor.id
    await ctx.db.flush()
    await ctx.emit(event, {id_key: row.id, "by": ctx.actor.id})


# ---- backchannel -------------------------------------------------------------------------------


async def _backchannel_post(ctx: _Context, action: p.BackchannelPost) -> None:
    _require_not_blocked(ctx)
    _require_state(ctx)
    body = _clean_body(action.body, ctx.node.settings.limits.backchannel_max_chars)
    post = BackchannelPost(
        conversation_id=ctx.conv.id,
        author_id=ctx.actor.id,
        body=body,
        hashtags=" ".join(find_hashtags(body)),
        offset_ms=_offset_ms(ctx),
        created_at=ctx.now,
    )
    ctx.db.add(post)
    await ctx.db.flush()
    await ctx.emit("backchannel.post", {"post": post_dict(post, ctx.actor, {})})


def _offset_ms(ctx: _Context) -> int | None:
    """Milliseconds since the conversation went live, to replay the post against the recording."""
    started = ctx.conv.started_at
    if started is None:
        return None
    return max(0, int((ctx.now - started).total_seconds() * 1000))


async def _post(ctx: _Context, post_id: int) -> BackchannelPost:
    post = await ctx.db.get(BackchannelPost, post_id)
    if post is None or post.conversation_id != ctx.conv.id or post.deleted_at is not None:
        raise ActionError("not_found", f"no post {post_id} in this conversation")
    return post


async def _backchannel_delete(ctx: _Context, action: p.BackchannelDelete) -> None:
    post = await _post(ctx, action.post_id)
    await _soft_delete(ctx, post, "post", "backchannel.deleted", "post_id")


async def _backchannel_react(ctx: _Context, action: p.BackchannelReact) -> None:
    post = await _post(ctx, action.post_id)
    _require_not_blocked(ctx)
    _require_state(ctx)
    mine = (
        Reaction.post_id == post.id,
        Reaction.user_id == ctx.actor.id,
        Reaction.kind == action.kind,
    )
    existing = (await ctx.db.execute(select(Reaction.id).where(*mine))).first()
    if action.on == (existing is not None):
        return  # already as asked: toggling is idempotent
    if action.on:
        ctx.db.add(
            Reaction(post_id=post.id, user_id=ctx.actor.id, kind=action.kind, created_at=ctx.now)
        )
    else:
        await ctx.db.execute(delete(Reaction).where(*mine))
    await ctx.db.flush()
    # Counted from the rows rather than incremented, so the event is right even if an earlier
    # event was lost or two people reacted at once.
    counts = await reaction_counts(ctx.db, [post.id])
    await ctx.emit(
        "backchannel.reactions", {"post_id": post.id, "reactions": counts.get(post.id, {})}
    )


# ---- hands and the stage -----------------------------------------------------------------------


async def _hand_raise(ctx: _Context, action: p.HandRaise) -> None:
    _require_not_blocked(ctx)
    _require_state(ctx)
    if ctx.me.role != Role.AUDIENCE:
        raise ActionError("invalid_state", f"expected audience, got {ctx.me.role.value}")
    if ctx.conv.stage_locked:
        raise ActionError("forbidden", "the stage is locked: hosts are not taking raised hands")
    if ctx.me.hand_raised_at is not None:
        return
    ctx.me.hand_raised_at = ctx.now
    await ctx.db.flush()
    await ctx.emit("stage.hand", {"user": person(ctx.actor), "raised": True})


async def _hand_lower(ctx: _Context, action: p.HandLower) -> None:
    _require_state(ctx)
    if ctx.me.hand_raised_at is None:
        return
    ctx.me.hand_raised_at = None
    await ctx.db.flush()
    await ctx.emit("stage.hand", {"user": person(ctx.actor), "raised": False})


async def _set_role(ctx: _Context, user: User, row: Participant, role: Role) -> None:
    """Change a role (lowering any raised hand) and emit `stage.role`; no-op if unchanged."""
    if row.role == role:
        return
    if row.role == Role.HOST:
        await _keep_a_host(ctx, row)
    row.role = role
    row.hand_raised_at = None
    row.updated_at = ctx.now
    await ctx.db.flush()
    await ctx.emit("stage.role", {"user": person(user), "role": role.value, "by": ctx.actor.id})


async def _keep_a_host(ctx: _Context, leaving: Participant) -> None:
    hosts = (
        await ctx.db.execute(
            select(func.count()).where(
                Participant.conversation_id == ctx.conv.id,
                Participant.role == Role.HOST,
                Participant.user_id != leaving.user_id,
            )
        )
    ).scalar_one()
    if hosts == 0:
        raise ActionError(
            "invalid_state", "a conversation needs a host: expected another host, got none"
        )


def _may_manage(ctx: _Context, target: Participant, doing: str) -> None:
    """Hosts manage everyone; co-hosts manage speakers and the audience, never a host."""
    if target.user_id == ctx.actor.id or ctx.is_host:
        return
    if target.role == Role.HOST:
        raise ActionError("forbidden", f"co-hosts cannot {doing} a host")
    if target.role == Role.COHOST:
        raise ActionError("forbidden", f"only hosts can {doing} a co-host")


async def _stage_invite(ctx: _Context, action: p.StageInvite) -> None:
    _require_moderator(ctx, "bring someone on stage")
    _require_state(ctx)
    user, row = await _target(ctx, action.user_id, admits=True)
    if row.blocked:
        raise ActionError("invalid_state", "expected an unblocked person, got a blocked one")
    if row.role != Role.AUDIENCE:
        return  # already on stage
    await _set_role(ctx, user, row, Role.SPEAKER)


async def _stage_remove(ctx: _Context, action: p.StageRemove) -> None:
    _require_moderator(ctx, "send someone back to the audience")
    _require_state(ctx)
    user, row = await _target(ctx, action.user_id)
    _may_manage(ctx, row, "remove")
    if row.role == Role.AUDIENCE:
        # Sending an audience member "back" declines their raised hand, if any.
        if row.hand_raised_at is not None:
            row.hand_raised_at = None
            await ctx.db.flush()
            await ctx.emit("stage.hand", {"user": person(user), "raised": False})
        return
    await _set_role(ctx, user, row, Role.AUDIENCE)


async def _stage_leave(ctx: _Context, action: p.StageLeave) -> None:
    _require_state(ctx)
    if ctx.me.role == Role.AUDIENCE:
        raise ActionError("invalid_state", "expected to be on stage, got audience")
    await _set_role(ctx, ctx.actor, ctx.me, Role.AUDIENCE)


async def _role_set(ctx: _Context, action: p.RoleSet) -> None:
    if not ctx.is_host:
        raise ActionError("forbidden", "only hosts can change roles")
    _require_state(ctx)
    user, row = await _target(ctx, action.user_id, admits=True)
    role = Role(action.role)
    if row.blocked and role != Role.AUDIENCE:
        raise ActionError("invalid_state", "expected an unblocked person, got a blocked one")
    await _set_role(ctx, user, row, role)


# ---- blocks and room settings ------------------------------------------------------------------


async def _participant_block(ctx: _Context, action: p.ParticipantBlock) -> None:
    _require_moderator(ctx, "block someone")
    if action.user_id == ctx.actor.id:
        raise ActionError("forbidden", "you cannot block yourself")
    user, row = await _target(ctx, action.user_id)
    if row.role == Role.HOST:
        raise ActionError(
            "forbidden",
            "co-hosts cannot block a host"
            if not ctx.is_host
            else "a host cannot be blocked: make them a co-host or audience first",
        )
    _may_manage(ctx, row, "block")
    if row.blocked:
        return
    # Blocking takes someone off the stage and down from the hand queue, announced as such so
    # clients that only follow stage events still show the right stage.
    if row.role != Role.AUDIENCE:
        await _set_role(ctx, user, row, Role.AUDIENCE)
    elif row.hand_raised_at is not None:
        row.hand_raised_at = None
        await ctx.emit("stage.hand", {"user": person(user), "raised": False})
    row.blocked = True
    row.updated_at = ctx.now
    await ctx.db.flush()
    await ctx.emit("participant.blocked", {"user_id": user.id, "blocked": True, "by": ctx.actor.id})


async def _participant_unblock(ctx: _Context, action: p.ParticipantUnblock) -> None:
    _require_moderator(ctx, "unblock someone")
    user, row = await _target(ctx, action.user_id)
    if not row.blocked:
        return
    row.blocked = False
    row.updated_at = ctx.now
    await ctx.db.flush()
    await ctx.emit(
        "participant.blocked", {"user_id": user.id, "blocked": False, "by": ctx.actor.id}
    )


async def _room_settings(ctx: _Context, action: p.RoomSettings) -> None:
    _require_moderator(ctx, "change the room settings")
    _require_state(ctx)
    before = room_settings(ctx.conv)
    if action.slow_mode_seconds is not None:
        ctx.conv.slow_mode_seconds = action.slow_mode_seconds
    if action.stage_locked is not None:
        ctx.conv.stage_locked = action.stage_locked
    after = room_settings(ctx.conv)
    if after == before:
        return
    await ctx.db.flush()
    await ctx.emit("room.settings", after)


# ---- consent to be recorded ----------------------------------------------------------------------


async def _media_consent(ctx: _Context, action: p.MediaConsentGive) -> None:
    """A speaker agrees to be recorded, transcribed and published here (repeats: no-ops)."""
    if ctx.me.role == Role.AUDIENCE:
        raise ActionError("not_on_stage", "expected to be on stage to give consent, got audience")
    if ctx.me.blocked:
        raise ActionError("blocked", "you are blocked in this conversation")
    if await ctx.db.get(MediaConsent, (ctx.conv.id, ctx.actor.id)) is not None:
        return
    row = MediaConsent(
        conversation_id=ctx.conv.id,
        user_id=ctx.actor.id,
        given_at=ctx.now,
        statement=CONSENT_STATEMENT,
    )
    ctx.db.add(row)
    await ctx.db.flush()
    await ctx.emit("stage.consent", {"user": person(ctx.actor), "given_at": iso(ctx.now)})


_Handler = Callable[[_Context, Any], Awaitable[None]]
_HANDLERS: dict[type[p.Frame], _Handler] = {
    p.ChatSend: _chat_send,
    p.ChatEdit: _chat_edit,
    p.ChatDelete: _chat_delete,
    p.BackchannelPost: _backchannel_post,
    p.BackchannelDelete: _backchannel_delete,
    p.BackchannelReact: _backchannel_react,
    p.HandRaise: _hand_raise,
    p.HandLower: _hand_lower,
    p.StageInvite: _stage_invite,
    p.StageRemove: _stage_remove,
    p.StageLeave: _stage_leave,
    p.RoleSet: _role_set,
    p.ParticipantBlock: _participant_block,
    p.ParticipantUnblock: _participant_unblock,
    p.RoomSettings: _room_settings,
    p.MediaConsentGive: _media_consent,
}
