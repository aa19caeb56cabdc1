"""Conversations: metadata rules, the lifecycle state machine, roles and who may see what.

Every change here is stored and announced the same way: the change and its room event (see
docs/protocol.md, `conversation.state` / `conversation.updated` / `stage.role`) are written in one
transaction, and only after the commit is the event handed to the hub, so a client never sees an
event that was not stored.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from junto import processing
from junto.conversation_fields import ConversationCreate, ConversationPatch
from junto.enums import ConversationState, Role, Visibility
from junto.events import delivery
from junto.events import log as room_log
from junto.storage.tables import Conversation, ConversationTag, Participant, User
from junto.storage.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from junto.events.log import StoredEvent
    from junto.node import Node

log = logging.getLogger("junto.conversations")

SLUG_LENGTH = 10
# Letters and digits only: a slug survives being pasted into chat, where linkifiers often drop
# a trailing "-" or "_". 62**10 is about 8e17, so guessing a live unlisted slug is hopeless.
_SLUG_ALPHABET = string.ascii_letters + string.digits

# Who may manage a conversation (edit, start, end, invite): hosts and co-hosts; node admins too.
MANAGER_ROLES = frozenset({Role.HOST, Role.COHOST})
# Higher rank = more standing; an invite or role change never silently lowers a host.
ROLE_RANK = {Role.AUDIENCE: 0, Role.SPEAKER: 1, Role.COHOST: 2, Role.HOST: 3}


class ConversationError(Exception):
    """A request about a conversation that cannot be honoured.

    `status` is the HTTP status code, `code` the protocol error code (docs/protocol.md), `field`
    names the input field at fault for validation errors (status 422).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str = "bad_message",
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field


def _check_future(when: datetime | None) -> None:
    if when is not None and when <= utcnow():
        raise ConversationError(
            f"scheduled_at must be in the future, got {iso(when)}",
            status=422,
            code="bad_message",
            field="scheduled_at",
        )


# ---- reading ----------------------------------------------------------------------------------


def iso(when: datetime | None) -> str | None:
    """The protocol's timestamp form: UTC, milliseconds, "Z"."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary(conv: Conversation, tags: Sequence[str]) -> dict[str, Any]:
    """The conversation as clients see it (docs/protocol.md, `conversation.updated`)."""
    return {
        "slug": conv.slug,
        "title": conv.title,
        "description": conv.description,
        "language": conv.language,
        "visibility": conv.visibility.value,
        "state": conv.state.value,
        "tags": list(tags),
        "scheduled_at": iso(conv.scheduled_at),
        "started_at": iso(conv.started_at),
        "ended_at": iso(conv.ended_at),
    }


async def get_by_slug(db: AsyncSession, slug: str) -> Conversation | None:
    if not 1 <= len(slug) <= 16:
        return None
    result = await db.execute(select(Conversation).where(Conversation.slug == slug))
    return result.scalar_one_or_none()


async def tags_of(db: AsyncSession, conv: Conversation) -> list[str]:
    result = await db.execute(
        select(ConversationTag.tag)
        .where(ConversationTag.conversation_id == conv.id)
        .order_by(ConversationTag.tag)
    )
    return list(result.scalars())


async def tags_for(db: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    """Tags of many conversations in one query (the lobby lists dozens at once)."""
    found: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return found
    result = await db.execute(
        select(ConversationTag.conversation_id, ConversationTag.tag)
        .where(ConversationTag.conversation_id.in_(ids))
        .order_by(ConversationTag.conversation_id, ConversationTag.tag)
    )
    for conversation_id, tag in result:
        found[conversation_id].append(tag)
    return found


# ---- permissions ------------------------------------------------------------------------------


async def participant_of(db: AsyncSession, conv: Conversation, user_id: int) -> Participant | None:
    return await db.get(Participant, (conv.id, user_id))


async def role_of(db: AsyncSession, conv: Conversation, user: User | None) -> Role | None:
    """The person's role here, or None if they have no participant row (or are anonymous)."""
    if user is None:
        return None
    row = await participant_of(db, conv, user.id)
    return row.role if row is not None else None


async def can_view(db: AsyncSession, conv: Conversation, user: User | None) -> bool:
    """Public and unlisted: anyone with the link. Invite-only: participants and admins."""
    if conv.visibility != Visibility.INVITE_ONLY:
        return True
    if user is None:
        return False
    return user.is_admin or await role_of(db, conv, user) is not None


async def can_manage(db: AsyncSession, conv: Conversation, user: User | None) -> bool:
    """Edit, start, end and invite: hosts, co-hosts and node admins."""
    if user is None:
        return False
    return user.is_admin or await role_of(db, conv, user) in MANAGER_ROLES


async def can_set_roles(db: AsyncSession, conv: Conversation, user: User | None) -> bool:
    """Promote or demote participants: the host and node admins (co-hosts may not mint co-hosts)."""
    if user is None:
        return False
    return user.is_admin or await role_of(db, conv, user) == Role.HOST


async def require_manager(db: AsyncSession, conv: Conversation, user: User, action: str) -> None:
    if not await can_manage(db, conv, user):
        raise ConversationError(
            f"only hosts and co-hosts may {action} this conversation", status=403, code="forbidden"
        )


# ---- announcing changes ----------------------------------------------------------------------


async def announce(node: Node | None, conv: Conversation, events: Sequence[StoredEvent]) -> None:
    """After the commit: hand the events to the hub and tell lobbies the conversation changed.

    The change is already stored, so a delivery failure must not fail the request: room clients
    pick the events up when they resume (docs/protocol.md, Resuming), so we log and carry on.
    """
    hub = node.hub if node is not None else None
    if hub is None:
        return
    await delivery.deliver(hub, events)
    try:
        await hub.conversation_changed(conv.id)
    except Exception:
        log.exception("could not announce change to conversation %s", conv.slug)


# ---- creating and editing ----------------------------------------------------------------------


def new_slug() -> str:
    return "".join(secrets.choice(_SLUG_ALPHABET) for _ in range(SLUG_LENGTH))


async def unused_slug(db: AsyncSession, column: Any = None) -> str:
    """A new slug that `column` (conversations' slugs unless given, e.g. Snippet.slug) lacks."""
    column = Conversation.slug if column is None else column
    for _ in range(5):
        slug = new_slug()
        if await db.scalar(select(column).where(column == slug)) is None:
            return slug
    # Five collisions in a 62**10 space means the random source is broken: do not loop forever.
    raise RuntimeError("could not find an unused slug")


async def _replace_tags(db: AsyncSession, conv: Conversation, tags: Sequence[str]) -> None:
    await db.execute(delete(ConversationTag).where(ConversationTag.conversation_id == conv.id))
    db.add_all(ConversationTag(conversation_id=conv.id, tag=tag) for tag in tags)


async def create(
    db: AsyncSession,
    fields: ConversationCreate,
    by: User,
    node: Node | None = None,
    *,
    admit: Callable[[], Awaitable[None]] | None = None,
) -> Conversation:
    """Create a scheduled conversation whose creator is its host.

    `admit()` is awaited once the request is valid, in this transaction (the web layer's rate
    limit, junto.ratelimit.admit): it may raise, and a refused request uses up nothing."""
    if by.is_guest:
        raise ConversationError(
            "only signed-in members may create conversations", status=403, code="forbidden"
        )
    _check_future(fields.scheduled_at)
    if admit is not None:
        await admit()
    conv = Conversation(
        slug=await unused_slug(db),
        title=fields.title,
        description=fields.description,
        language=fields.language,
        visibility=fields.visibility,
        state=ConversationState.SCHEDULED,
        scheduled_at=fields.scheduled_at,
        created_by=by.id,
        last_seq=0,
        slow_mode_seconds=0,
        stage_locked=False,
    )
    db.add(conv)
    await db.flush()
    db.add(Participant(conversation_id=conv.id, user_id=by.id, role=Role.HOST, blocked=False))
    db.add_all(ConversationTag(conversation_id=conv.id, tag=tag) for tag in fields.tags)
    await db.commit()
    # A new public conversation appears among the lobby's upcoming ones.
    await announce(node, conv, [])
    return conv


async def edit(
    db: AsyncSession,
    conv: Conversation,
    changes: ConversationPatch,
    by: User,
    node: Node | None = None,
) -> bool:
    """Apply the fields present in `changes`; returns whether anything changed."""
    await require_manager(db, conv, by, "edit")
    given = changes.model_dump(include=changes.model_fields_set)
    old_tags = await tags_of(db, conv)
    new_tags = sorted(given.pop("tags", old_tags))
    if "scheduled_at" in given and given["scheduled_at"] != conv.scheduled_at:
        if conv.state != ConversationState.SCHEDULED:
            raise ConversationError(
                f"cannot reschedule: expected scheduled, got {conv.state.value}",
                status=409,
                code="invalid_state",
            )
        _check_future(given["scheduled_at"])
    changed = {k: v for k, v in given.items() if getattr(conv, k) != v}
    if not changed and new_tags == old_tags:
        return False
    for name, value in changed.items():
        setattr(conv, name, value)
    conv.updated_at = utcnow()
    if new_tags != old_tags:
        await _replace_tags(db, conv, new_tags)
    await db.flush()
    event = await room_log.append(
        db, conv.id, "conversation.updated", summary(conv, new_tags), actor_id=by.id
    )
    await db.commit()
    await announce(node, conv, [event])
    return True


# ---- the lifecycle ------------------------------------------------------------------------------

# action -> (required state, next state, timestamp column set on entry). Publishing is the
# host's "this is reviewed": only then is an ended conversation shown to everyone, listed in
# search and feeds. Unpublishing takes it back to review (it clears published_at, see below).
TRANSITIONS: dict[str, tuple[ConversationState, ConversationState, str]] = {
    "start": (ConversationState.SCHEDULED, ConversationState.LIVE, "started_at"),
    "end": (ConversationState.LIVE, ConversationState.ENDED, "ended_at"),
    "publish": (ConversationState.ENDED, ConversationState.PUBLISHED, "published_at"),
    "unpublish": (ConversationState.PUBLISHED, ConversationState.ENDED, "published_at"),
}
# Transitions that clear their column instead of stamping it.
_CLEARS = frozenset({"unpublish"})


async def transition(
    db: AsyncSession, conv: Conversation, action: str, by: User, node: Node | None = None
) -> StoredEvent:
    """Move `conv` along the state machine, or raise 409 "cannot X: expected A, got B"."""
    required, target, stamp = TRANSITIONS[action]
    await require_manager(db, conv, by, action)
    now = utcnow()
    # A conditional UPDATE, not read-then-write: two hosts pressing "start" on two node
    # processes at once must not both succeed (the second gets the 409).
    result = await db.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.state == required)
        .values({"state": target, stamp: None if action in _CLEARS else now, "updated_at": now})
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        await db.rollback()
        await db.refresh(conv)
        raise ConversationError(
            f"cannot {action}: expected {required.value}, got {conv.state.value}",
            status=409,
            code="invalid_state",
        )
    await db.refresh(conv)
    payload: dict[str, Any] = {
        "state": conv.state.value,
        "started_at": iso(conv.started_at),
        "ended_at": iso(conv.ended_at),
    }
    if stamp == "published_at":
        payload["published_at"] = iso(conv.published_at)
    event = await room_log.append(db, conv.id, "conversation.state", payload, actor_id=by.id)
    if action == "end":
        # In the same transaction as the state change: an ended conversation always has its
        # transcript and composite recording queued, whatever crashes next.
        await processing.after_end(db, conv.id)
    await db.commit()
    await announce(node, conv, [event])
    return event


async def start(
    db: AsyncSession, conv: Conversation, by: User, node: Node | None = None
) -> StoredEvent:
    """scheduled -> live (sets started_at)."""
    return await transition(db, conv, "start", by, node)


async def end(
    db: AsyncSession, conv: Conversation, by: User, node: Node | None = None
) -> StoredEvent:
    """live -> ended (sets ended_at)."""
    return await transition(db, conv, "end", by, node)


async def publish(
    db: AsyncSession, conv: Conversation, by: User, node: Node | None = None
) -> StoredEvent:
    """ended -> published (sets published_at): the conversation's page is open to everyone who
    may see the conversation, and it is listed in search and feeds if public."""
    return await transition(db, conv, "publish", by, node)


async def unpublish(
    db: AsyncSession, conv: Conversation, by: User, node: Node | None = None
) -> StoredEvent:
    """published -> ended (clears published_at): back to review by its hosts and speakers."""
    return await transition(db, conv, "unpublish", by, node)


# Who reviews an ended conversation before it is published (node admins too).
REVIEWER_ROLES = frozenset({Role.HOST, Role.COHOST, Role.SPEAKER})
# Room events that carry what speakers said. While a conversation is under review they are
# for its reviewers only, exactly like its captions file, transcript and page: a speaker may
# ask for a correction before anything they said reaches the public.
SPOKEN_EVENTS = frozenset({"caption"})


@dataclass(frozen=True)
class Reader:
    """Someone reading a conversation, as far as what they may see depends on who they are."""

    user_id: int | None = None
    role: Role | None = None
    is_admin: bool = False

    @property
    def reviews(self) -> bool:
        return self.is_admin or self.role in REVIEWER_ROLES


def page_open(state: ConversationState, reviews: bool) -> bool:
    """The review rule: an ended, unpublished conversation is open to its reviewers only."""
    return state != ConversationState.ENDED or reviews


def withheld_events(state: ConversationState, reviews: bool) -> frozenset[str]:
    """The room-event types a reader may not receive in this state (given `can_view`): the
    same rule as the page's, so captions follow the captions file and the transcript. Every
    path that hands room events to someone (REST, replay, live fan-out) asks this."""
    return frozenset() if page_open(state, reviews) else SPOKEN_EVENTS


async def reader_of(db: AsyncSession, conv: Conversation, user: User | None) -> Reader:
    if user is None:
        return Reader()
    return Reader(user.id, await role_of(db, conv, user), user.is_admin)


async def can_see_page(db: AsyncSession, conv: Conversation, user: User | None) -> bool:
    """Whether `user` may see the ended conversation's page (given `can_view`).

    An ended but unpublished conversation is under review: its hosts, co-hosts, speakers and
    node admins see it (to check the transcript, the video and the summary before publishing);
    everyone else is told it is not published yet. Once published, `can_view` alone decides.
    """
    if page_open(conv.state, reviews=False):
        return True
    return page_open(conv.state, (await reader_of(db, conv, user)).reviews)


async def events_withheld_from(
    db: AsyncSession, conv: Conversation, user: User | None
) -> frozenset[str]:
    """`withheld_events` for `user` in the conversation's current state."""
    if not withheld_events(conv.state, reviews=False):
        return frozenset()
    return withheld_events(conv.state, (await reader_of(db, conv, user)).reviews)


# ---- roles -------------------------------------------------------------------------------------


async def grant_role(
    db: AsyncSession,
    conv: Conversation,
    user: User,
    role: Role,
    *,
    by_id: int | None,
    allow_downgrade: bool,
) -> StoredEvent | None:
    """Give `user` `role` here (creating the participant row); returns the event, if any.

    Without `allow_downgrade` a role is only ever raised (an invite never demotes a co-host).
    The host's role never changes. The caller commits and announces.
    """
    from junto.accounts import person

    row = await participant_of(db, conv, user.id)
    if row is not None:
        if row.role == role:
            return None
        if row.role == Role.HOST:
            if allow_downgrade:
                raise ConversationError(
                    "the host's role cannot be changed", status=409, code="invalid_state"
                )
            return None
        if ROLE_RANK[role] < ROLE_RANK[row.role] and not allow_downgrade:
            return None
        if row.blocked and role != Role.AUDIENCE:
            # As in the room (junto.room.stage.role_set): unblock first, then bring them up.
            raise ConversationError(
                "expected an unblocked person, got a blocked one", status=409, code="invalid_state"
            )
        row.role = role
        row.updated_at = utcnow()
    else:
        db.add(Participant(conversation_id=conv.id, user_id=user.id, role=role, blocked=False))
    await db.flush()
    return await room_log.append(
        db,
        conv.id,
        "stage.role",
        {"user": person(user), "role": role.value, "by": by_id},
        actor_id=by_id,
    )


async def set_role(
    db: AsyncSession,
    conv: Conversation,
    by: User,
    target_id: int,
    role: Role,
    node: Node | None = None,
) -> Participant:
    """The host sets someone's role to co-host, speaker or audience."""
    if role == Role.HOST:
        raise ConversationError(
            "expected cohost, speaker or audience, got host", status=422, field="role"
        )
    if not await can_set_roles(db, conv, by):
        raise ConversationError(
            "only the host may change roles in this conversation", status=403, code="forbidden"
        )
    target = await db.get(User, target_id)
    if target is None:
        raise ConversationError(f"no person with id {target_id}", status=404, code="not_found")
    event = await grant_role(db, conv, target, role, by_id=by.id, allow_downgrade=True)
    row = await participant_of(db, conv, target_id)
    assert row is not None  # grant_role created or kept it
    await db.commit()
    if event is not None:
        await announce(node, conv, [event])
    return row


async def participants(db: AsyncSession, conv: Conversation) -> list[tuple[Participant, User]]:
    """Everyone with a participant row, hosts first, then by name."""
    result = await db.execute(
        select(Participant, User)
        .join(User, User.id == Participant.user_id)
        .where(Participant.conversation_id == conv.id)
        .order_by(User.display_name, User.id)
    )
    rows = [(p, u) for p, u in result]
    # Role order by rank, not by the stored string's alphabetical order.
    rows.sort(key=lambda pu: -ROLE_RANK[pu[0].role])
    return rows


# ---- listing ----------------------------------------------------------------------------------

# A stand-in for "not scheduled yet" when sorting upcoming conversations (they come last).
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


def _sort_key(state: ConversationState | None) -> tuple[ColumnElement[Any], bool]:
    """(sort expression, ascending) for a lobby list: soonest first, or most recent first."""
    if state == ConversationState.LIVE:
        return Conversation.started_at, False  # type: ignore[return-value]
    if state == ConversationState.SCHEDULED:
        return func.coalesce(Conversation.scheduled_at, literal(_FAR_FUTURE, UTCDateTime)), True
    if state == ConversationState.ENDED:
        return Conversation.ended_at, False  # type: ignore[return-value]
    if state == ConversationState.PUBLISHED:
        return Conversation.published_at, False  # type: ignore[return-value]
    return Conversation.created_at, False  # type: ignore[return-value]


async def list_public(
    db: AsyncSession,
    *,
    state: ConversationState | None = None,
    tag: str | None = None,
    limit: int = 50,
    after: tuple[datetime, int] | None = None,
) -> list[Conversation]:
    """Public conversations in lobby order; `after` is the (sort key, id) of the last one seen."""
    key, ascending = _sort_key(state)
    query = select(Conversation).where(Conversation.visibility == Visibility.PUBLIC)
    if state is not None:
        query = query.where(Conversation.state == state)
    if tag is not None:
        query = query.where(
            Conversation.id.in_(
                select(ConversationTag.conversation_id).where(ConversationTag.tag == tag)
            )
        )
    if after is not None:
        value = literal(after[0], UTCDateTime)
        if ascending:
            query = query.where((key > value) | ((key == value) & (Conversation.id > after[1])))
        else:
            query = query.where((key < value) | ((key == value) & (Conversation.id < after[1])))
    order = (
        (key.asc(), Conversation.id.asc()) if ascending else (key.desc(), Conversation.id.desc())
    )
    result = await db.execute(query.order_by(*order).limit(limit))
    return list(result.scalars())


def sort_value(conv: Conversation, state: ConversationState | None) -> datetime:
    """The value `list_public` sorted `conv` by (for building the next page's cursor)."""
    if state == ConversationState.LIVE:
        return conv.started_at or conv.created_at
    if state == ConversationState.SCHEDULED:
        return conv.scheduled_at or _FAR_FUTURE
    if state == ConversationState.ENDED:
        return conv.ended_at or conv.created_at
    return conv.created_at
