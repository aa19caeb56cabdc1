"""What clients see of the room: messages, posts and the stage as protocol dicts, and snapshots.

The same serialisers build the room events (junto.room.actions), the `snapshot` frame and
the REST mirror (junto.web.room_api), so a late reader and a live client see identical objects.
Deleted messages and posts stay in the database for moderation audits but never appear here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from junto import conversations
from junto.accounts import person
from junto.conversations import iso
from junto.enums import ConversationState, Role
from junto.storage.tables import (
    BackchannelPost,
    ChatMessage,
    Conversation,
    MediaConsent,
    Participant,
    Reaction,
    User,
)

if TYPE_CHECKING:
    from junto.node import Node

# How much history a snapshot carries (docs/protocol.md, `snapshot`).
SNAPSHOT_ITEMS = 200
MODERATOR_ROLES = frozenset({Role.HOST, Role.COHOST})
POSTING_STATES = frozenset({ConversationState.SCHEDULED, ConversationState.LIVE})
_ROLE_ORDER = {Role.HOST: 0, Role.COHOST: 1, Role.SPEAKER: 2, Role.AUDIENCE: 3}


# ---- serialisers --------------------------------------------------------------------------------


def message_dict(message: ChatMessage, author: User) -> dict[str, Any]:
    return {
        "id": message.id,
        "author": person(author),
        "body": message.body,
        "created_at": iso(message.created_at),
        "edited_at": iso(message.edited_at),
    }


def split_hashtags(stored: str) -> list[str]:
    return stored.split() if stored else []


def post_dict(post: BackchannelPost, author: User, reactions: dict[str, int]) -> dict[str, Any]:
    return {
        "id": post.id,
        "author": person(author),
        "body": post.body,
        "hashtags": split_hashtags(post.hashtags),
        "offset_ms": post.offset_ms,
        "created_at": iso(post.created_at),
        "reactions": reactions,
    }


def stage_entry(participant: Participant, user: User) -> dict[str, Any]:
    return {
        **person(user),
        "role": participant.role.value,
        "hand_raised": participant.hand_raised_at is not None,
        "hand_raised_at": iso(participant.hand_raised_at),
    }


# ---- queries ------------------------------------------------------------------------------------


async def reaction_counts(db: AsyncSession, post_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """`{post_id: {kind: count}}`, counted from the rows (kinds with no reactions left out)."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if not post_ids:
        return counts
    result = await db.execute(
        select(Reaction.post_id, Reaction.kind, func.count())
        .where(Reaction.post_id.in_(post_ids))
        .group_by(Reaction.post_id, Reaction.kind)
        .order_by(Reaction.post_id, Reaction.kind)
    )
    for post_id, kind, count in result.all():
        counts[post_id][kind] = int(count)
    return counts


async def chat_page(
    db: AsyncSession, conversation_id: int, *, before: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Up to `limit` visible messages with ids below `before`, oldest first."""
    query = (
        select(ChatMessage, User)
        .join(User, User.id == ChatMessage.author_id)
        .where(ChatMessage.conversation_id == conversation_id, ChatMessage.deleted_at.is_(None))
    )
    if before is not None:
        query = query.where(ChatMessage.id < before)
    result = await db.execute(query.order_by(ChatMessage.id.desc()).limit(limit))
    rows = list(result.all())
    rows.reverse()
    return [message_dict(message, author) for message, author in rows]


async def backchannel_page(
    db: AsyncSession,
    conversation_id: int,
    *,
    before: int | None = None,
    limit: int = 50,
    tag: str | None = None,
    viewer: User | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` visible posts with ids below `before` (and `tag`, if given), oldest first.

    With a `viewer`, each post also says which reactions are theirs (`mine`), so a page that
    loads late shows their toggles in the right state.
    """
    query = (
        select(BackchannelPost, User)
        .join(User, User.id == BackchannelPost.author_id)
        .where(
            BackchannelPost.conversation_id == conversation_id,
            BackchannelPost.deleted_at.is_(None),
        )
    )
    if before is not None:
        query = query.where(BackchannelPost.id < before)
    if tag is not None:
        # Tags are stored space-separated; padding both sides matches whole tags only.
        padded = " " + BackchannelPost.hashtags + " "
        query = query.where(padded.contains(f" {tag} ", autoescape=True))
    result = await db.execute(query.order_by(BackchannelPost.id.desc()).limit(limit))
    rows = list(result.all())
    rows.reverse()
    ids = [post.id for post, _ in rows]
    counts = await reaction_counts(db, ids)
    mine = await _reactions_by(db, ids, viewer) if viewer is not None else None
    posts = []
    for post, author in rows:
        entry = post_dict(post, author, counts.get(post.id, {}))
        if mine is not None:
            entry["mine"] = sorted(mine.get(post.id, ()))
        posts.append(entry)
    return posts


async def _reactions_by(
    db: AsyncSession, post_ids: Sequence[int], viewer: User
) -> dict[int, set[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    if not post_ids:
        return found
    result = await db.execute(
        select(Reaction.post_id, Reaction.kind).where(
            Reaction.post_id.in_(post_ids), Reaction.user_id == viewer.id
        )
    )
    for post_id, kind in result.all():
        found[post_id].add(kind)
    return found


async def stage_participants(db: AsyncSession, conversation_id: int) -> list[dict[str, Any]]:
    """Everyone above the audience or with a raised hand: hosts first, hands in raising order."""
    result = await db.execute(
        select(Participant, User)
        .join(User, User.id == Participant.user_id)
        .where(
            Participant.conversation_id == conversation_id,
            or_(Participant.role != Role.AUDIENCE, Participant.hand_raised_at.is_not(None)),
        )
    )
    rows = list(result.all())
    rows.sort(
        key=lambda pu: (
            _ROLE_ORDER[pu[0].role],
            pu[0].hand_raised_at is None,
            pu[0].hand_raised_at or pu[0].updated_at,
            pu[1].id,
        )
    )
    consented = set(
        (
            await db.execute(
                select(MediaConsent.user_id).where(MediaConsent.conversation_id == conversation_id)
            )
        ).scalars()
    )
    return [
        {**stage_entry(participant, user), "consented": user.id in consented}
        for participant, user in rows
    ]


# ---- snapshot and viewer ------------------------------------------------------------------------


async def consistent_reads(db: AsyncSession) -> None:
    """Make the session's following reads one consistent view of the database.

    PostgreSQL's default READ COMMITTED gives each statement its own view, so a post committed
    between two SELECTs could be in the list but after `last_id` (or the reverse); REPEATABLE
    READ pins one view for the transaction. The SQLite driver only opens a transaction on the
    first write, so each SELECT would be on its own; an explicit BEGIN gives one WAL snapshot.
    Must be called before the session's first statement.
    """
    if db.get_bind().dialect.name == "sqlite":
        await db.execute(text("BEGIN"))
    else:
        await db.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def snapshot(node: Node, conversation: Conversation, viewer: User | None) -> dict[str, Any]:
    """The `snapshot` frame's fields (docs/protocol.md), read in one consistent transaction.

    Beyond the documented fields it carries `settings` (slow mode, stage lock) and, for a
    signed-in viewer, each post's `mine` reactions.
    """
    async with node.db() as db:
        await consistent_reads(db)
        conv = await db.get(Conversation, conversation.id, populate_existing=True)
        if conv is None:
            raise LookupError(f"conversation {conversation.id} no longer exists")
        tags = await conversations.tags_of(db, conv)
        return {
            "last_id": conv.last_seq,
            "conversation": conversations.summary(conv, tags),
            "settings": room_settings(conv),
            "chat": await chat_page(db, conv.id, limit=SNAPSHOT_ITEMS),
            "backchannel": await backchannel_page(db, conv.id, limit=SNAPSHOT_ITEMS, viewer=viewer),
            "stage": {"participants": await stage_participants(db, conv.id)},
        }


def room_settings(conv: Conversation) -> dict[str, Any]:
    """The `room.settings` event's data, and the snapshot's `settings`."""
    return {"slow_mode_seconds": conv.slow_mode_seconds, "stage_locked": conv.stage_locked}


async def viewer_info(
    db: AsyncSession, conversation: Conversation, user: User | None
) -> dict[str, Any]:
    """`welcome.you`: who the connection is and what the room will let them do."""
    if user is None:
        return {
            "user_id": None,
            "name": None,
            "colour": None,
            "role": None,
            "is_guest": False,
            "can_post": False,
            "can_moderate": False,
        }
    row = await db.get(Participant, (conversation.id, user.id))
    role = row.role if row is not None else Role.AUDIENCE
    blocked = row is not None and row.blocked
    return {
        "user_id": user.id,
        "name": user.display_name,
        "colour": user.colour,
        "role": role.value,
        "is_guest": user.is_guest,
        "can_post": not blocked and conversation.state in POSTING_STATES,
        "can_moderate": user.is_admin or role in MODERATOR_ROLES,
    }
