"""The stage and its moderation: raised hands, who is on stage, roles (a conversation always keeps
a host), blocks, the room's settings (slow mode, stage lock), and speakers' consent to be
recorded.
"""

from __future__ import annotations

from sqlalchemy import func, select

from junto.accounts import person
from junto.conversations import iso
from junto.enums import Role
from junto.room import protocol as p
from junto.room.context import (
    Context,
    require_moderator,
    require_not_blocked,
    require_state,
    target,
)
from junto.room.protocol import ActionError
from junto.room.views import room_settings
from junto.storage.tables import MediaConsent, Participant, User

# The words a speaker agrees to before publishing; stored with each consent so that what was
# agreed stays known if the wording changes.
CONSENT_STATEMENT = (
    "I agree that my voice and video in this conversation are recorded, transcribed and "
    "published with my name."
)


async def hand_raise(ctx: Context, action: p.HandRaise) -> None:
    require_not_blocked(ctx)
    require_state(ctx)
    if ctx.me.role != Role.AUDIENCE:
        raise ActionError("invalid_state", f"expected audience, got {ctx.me.role.value}")
    if ctx.conv.stage_locked:
        raise ActionError("forbidden", "the stage is locked: hosts are not taking raised hands")
    if ctx.me.hand_raised_at is not None:
        return
    ctx.me.hand_raised_at = ctx.now
    await ctx.db.flush()
    await ctx.emit("stage.hand", {"user": person(ctx.actor), "raised": True})


async def hand_lower(ctx: Context, action: p.HandLower) -> None:
    require_state(ctx)
    if ctx.me.hand_raised_at is None:
        return
    ctx.me.hand_raised_at = None
    await ctx.db.flush()
    await ctx.emit("stage.hand", {"user": person(ctx.actor), "raised": False})


async def _set_role(ctx: Context, user: User, row: Participant, role: Role) -> None:
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


async def _keep_a_host(ctx: Context, leaving: Participant) -> None:
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


def _may_manage(ctx: Context, target: Participant, doing: str) -> None:
    """Hosts manage everyone; co-hosts manage speakers and the audience, never a host."""
    if target.user_id == ctx.actor.id or ctx.is_host:
        return
    if target.role == Role.HOST:
        raise ActionError("forbidden", f"co-hosts cannot {doing} a host")
    if target.role == Role.COHOST:
        raise ActionError("forbidden", f"only hosts can {doing} a co-host")


async def invite(ctx: Context, action: p.StageInvite) -> None:
    require_moderator(ctx, "bring someone on stage")
    require_state(ctx)
    user, row = await target(ctx, action.user_id, admits=True)
    if row.blocked:
        raise ActionError("invalid_state", "expected an unblocked person, got a blocked one")
    if row.role != Role.AUDIENCE:
        return  # already on stage
    await _set_role(ctx, user, row, Role.SPEAKER)


async def remove(ctx: Context, action: p.StageRemove) -> None:
    require_moderator(ctx, "send someone back to the audience")
    require_state(ctx)
    user, row = await target(ctx, action.user_id)
    _may_manage(ctx, row, "remove")
    if row.role == Role.AUDIENCE:
        # Sending an audience member "back" declines their raised hand, if any.
        if row.hand_raised_at is not None:
            row.hand_raised_at = None
            await ctx.db.flush()
            await ctx.emit("stage.hand", {"user": person(user), "raised": False})
        return
    await _set_role(ctx, user, row, Role.AUDIENCE)


async def leave(ctx: Context, action: p.StageLeave) -> None:
    require_state(ctx)
    if ctx.me.role == Role.AUDIENCE:
        raise ActionError("invalid_state", "expected to be on stage, got audience")
    await _set_role(ctx, ctx.actor, ctx.me, Role.AUDIENCE)


async def role_set(ctx: Context, action: p.RoleSet) -> None:
    if not ctx.is_host:
        raise ActionError("forbidden", "only hosts can change roles")
    require_state(ctx)
    user, row = await target(ctx, action.user_id, admits=True)
    role = Role(action.role)
    if row.blocked and role != Role.AUDIENCE:
        raise ActionError("invalid_state", "expected an unblocked person, got a blocked one")
    await _set_role(ctx, user, row, role)


async def block(ctx: Context, action: p.ParticipantBlock) -> None:
    require_moderator(ctx, "block someone")
    if action.user_id == ctx.actor.id:
        raise ActionError("forbidden", "you cannot block yourself")
    user, row = await target(ctx, action.user_id)
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


async def unblock(ctx: Context, action: p.ParticipantUnblock) -> None:
    require_moderator(ctx, "unblock someone")
    user, row = await target(ctx, action.user_id)
    if not row.blocked:
        return
    row.blocked = False
    row.updated_at = ctx.now
    await ctx.db.flush()
    await ctx.emit(
        "participant.blocked", {"user_id": user.id, "blocked": False, "by": ctx.actor.id}
    )


async def settings(ctx: Context, action: p.RoomSettings) -> None:
    require_moderator(ctx, "change the room settings")
    require_state(ctx)
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


async def consent(ctx: Context, action: p.MediaConsentGive) -> None:
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
