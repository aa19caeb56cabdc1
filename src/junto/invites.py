"""Invite links: signed tokens that make whoever follows them a participant with a given role.

A token is `base64url(invite id, expiry) "." base64url(HMAC-SHA256(key, that payload))`. The
signature lets us refuse forged or altered links without a database lookup; the row it names
carries the use count, and deleting the row revokes the link. The HMAC key is derived from the
node's secret key with a purpose label, so a token minted here can never pass as a session or
password-reset token signed with the same secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from junto.conversations import (
    ROLE_RANK,
    ConversationError,
    announce,
    can_set_roles,
    grant_role,
    participant_of,
    require_manager,
)
from junto.enums import ConversationState, Role
from junto.storage.tables import Conversation, Invite, User
from junto.storage.types import utcnow

if TYPE_CHECKING:
    from junto.node import Node

DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=90)
MAX_USES = 1000
INVITE_ROLES = frozenset({Role.COHOST, Role.SPEAKER, Role.AUDIENCE})
JOINABLE_STATES = frozenset({ConversationState.SCHEDULED, ConversationState.LIVE})
_PAYLOAD = struct.Struct(">QQ")  # invite id, expiry as Unix seconds
_PURPOSE = b"junto invite link v1"


@dataclass(frozen=True)
class IssuedInvite:
    invite: Invite
    token: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest()


def sign(secret_key: str, invite_id: int, expires_at: datetime) -> str:
    payload = _PAYLOAD.pack(invite_id, int(expires_at.timestamp()))
    mac = hmac.new(_key(secret_key), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(secret_key: str, token: str) -> tuple[int, datetime]:
    """The (invite id, expiry) a token names, if its signature is ours; raises otherwise."""
    payload_text, _, mac_text = token.partition(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
        invite_id, expiry = _PAYLOAD.unpack(payload)
    except (binascii.Error, struct.error, ValueError) as exc:
        raise ConversationError(
            "this is not a Junto invite link", status=400, code="bad_token"
        ) from exc
    expected = hmac.new(_key(secret_key), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise ConversationError(
            "this invite link has been altered or was not made by this node",
            status=403,
            code="bad_token",
        )
    return invite_id, datetime.fromtimestamp(expiry, UTC)


def _check_open(invite: Invite | None, expiry: datetime, now: datetime) -> Invite:
    """The invite, if it can still be used; 410 Gone otherwise (the link itself was genuine)."""
    if invite is None:
        raise ConversationError("this invite was revoked", status=410, code="invite_revoked")
    if min(expiry, invite.expires_at) <= now:
        raise ConversationError("this invite has expired", status=410, code="invite_expired")
    if invite.uses >= invite.max_uses:
        raise ConversationError(
            f"this invite has been used {invite.uses} of {invite.max_uses} times",
            status=410,
            code="invite_used_up",
        )
    return invite


async def create_invite(
    db: AsyncSession,
    conv: Conversation,
    by: User,
    *,
    secret_key: str,
    role: Role = Role.SPEAKER,
    ttl: timedelta = DEFAULT_TTL,
    max_uses: int = 1,
    admit: Callable[[], Awaitable[None]] | None = None,
) -> IssuedInvite:
    """A new invite link for `conv` (hosts and co-hosts; co-host invites need the host).

    `admit()` is awaited once the request is valid, in this transaction (the web layer's rate
    limit): it may raise, and a refused request uses up nothing."""
    await require_manager(db, conv, by, "invite people to")
    if role not in INVITE_ROLES:
        raise ConversationError(
            f"expected cohost, speaker or audience, got {role.value}", status=422, field="role"
        )
    if role == Role.COHOST and not await can_set_roles(db, conv, by):
        raise ConversationError("only the host may invite co-hosts", status=403, code="forbidden")
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise ConversationError(
            "an invite lasts between 1 minute and 90 days", status=422, field="ttl_seconds"
        )
    if not 1 <= max_uses <= MAX_USES:
        raise ConversationError(
            f"max_uses must be between 1 and {MAX_USES}", status=422, field="max_uses"
        )
    if admit is not None:
        await admit()
    # Whole seconds: the token carries the expiry in seconds and both must agree.
    expires_at = (utcnow() + ttl).replace(microsecond=0)
    invite = Invite(
        conversation_id=conv.id,
        role=role,
        created_by=by.id,
        expires_at=expires_at,
        max_uses=max_uses,
        uses=0,
    )
    db.add(invite)
    await db.commit()
    return IssuedInvite(invite, sign(secret_key, invite.id, expires_at))


async def open_invite(
    db: AsyncSession, token: str, *, secret_key: str
) -> tuple[Invite, Conversation]:
    """The invite a token names and its conversation, if the link can still be used."""
    invite_id, expiry = verify(secret_key, token)
    invite = _check_open(await db.get(Invite, invite_id), expiry, utcnow())
    conv = await db.get(Conversation, invite.conversation_id)
    if conv is None:  # cascades make this unreachable, but a token must never 500
        raise ConversationError("this invite was revoked", status=410, code="invite_revoked")
    return invite, conv


async def accept_invite(
    db: AsyncSession, token: str, user: User, *, secret_key: str, node: Node | None = None
) -> tuple[Conversation, Role]:
    """Make `user` a participant with the invite's role; returns their role afterwards.

    Someone who already holds that role or a higher one keeps it and uses nothing up, so
    following one's own link twice is harmless and a host is never downgraded.
    """
    invite, conv = await open_invite(db, token, secret_key=secret_key)
    if conv.state not in JOINABLE_STATES:
        raise ConversationError(
            f"cannot join: expected scheduled or live, got {conv.state.value}",
            status=409,
            code="invalid_state",
        )
    row = await participant_of(db, conv, user.id)
    if row is not None and ROLE_RANK[row.role] >= ROLE_RANK[invite.role]:
        return conv, row.role
    if row is not None and row.blocked:
        # A block is the hosts' decision about this person; a link (perhaps shared widely, up to
        # MAX_USES) must not undo it by putting them back on stage. Checked before a use is spent.
        raise ConversationError(
            "a host has blocked you in this conversation", status=403, code="blocked"
        )
    if invite.role == Role.COHOST and user.is_guest:
        # Co-hosts moderate, start and end the conversation; a link can travel further than
        # intended, so those powers go only to someone with an account the node can hold to it.
        raise ConversationError(
            "co-hosts need an account: sign up or sign in, then open this link again",
            status=403,
            code="members_only",
        )
    # Count the use with a guarded UPDATE so two people racing for the last use cannot both win.
    used = await db.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.uses < Invite.max_uses)
        .values(uses=Invite.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(used, "rowcount", 0) != 1:
        await db.rollback()
        raise ConversationError("this invite has been used up", status=410, code="invite_used_up")
    event = await grant_role(
        db, conv, user, invite.role, by_id=invite.created_by, allow_downgrade=False
    )
    await db.commit()
    await announce(node, conv, [event] if event is not None else [])
    return conv, invite.role


async def revoke_invite(db: AsyncSession, conv: Conversation, invite_id: int, by: User) -> None:
    await require_manager(db, conv, by, "revoke invites to")
    invite = await db.get(Invite, invite_id)
    if invite is None or invite.conversation_id != conv.id:
        raise ConversationError(f"no invite {invite_id} here", status=404, code="not_found")
    await db.delete(invite)
    await db.commit()


async def open_invites(db: AsyncSession, conv: Conversation) -> list[Invite]:
    """Invites that can still be used, newest first (shown to hosts with a revoke button)."""
    result = await db.execute(
        select(Invite)
        .where(
            Invite.conversation_id == conv.id,
            Invite.expires_at > utcnow(),
            Invite.uses < Invite.max_uses,
        )
        .order_by(Invite.id.desc())
    )
    return list(result.scalars())
