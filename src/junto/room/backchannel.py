"""The backchannel: short public posts anchored to the moment they were posted, and reactions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from junto.room import protocol as p
from junto.room.context import Context, clean_body, require_not_blocked, require_state, soft_delete
from junto.room.protocol import ActionError
from junto.room.text import find_hashtags
from junto.room.views import post_dict, reaction_counts
from junto.storage.tables import BackchannelPost, Reaction


async def post(ctx: Context, action: p.BackchannelPost) -> None:
    row = await new_post(ctx, action)
    ctx.db.add(row)
    await ctx.db.flush()
    await ctx.emit(*posted(row, ctx))


async def new_post(ctx: Context, action: p.BackchannelPost) -> BackchannelPost:
    """The post `action` asks for, checked and not yet added (a group stores many at once)."""
    require_not_blocked(ctx)
    require_state(ctx)
    body = clean_body(action.body, ctx.node.settings.limits.backchannel_max_chars)
    return BackchannelPost(
        conversation_id=ctx.conv.id,
        author_id=ctx.actor.id,
        body=body,
        hashtags=" ".join(find_hashtags(body)),
        offset_ms=_offset_ms(ctx),
        created_at=ctx.now,
    )


def posted(row: BackchannelPost, ctx: Context) -> tuple[str, dict[str, Any]]:
    """The event announcing a stored post (its id is known once flushed)."""
    return "backchannel.post", {"post": post_dict(row, ctx.actor, {})}


def _offset_ms(ctx: Context) -> int | None:
    """Milliseconds since the conversation went live, to replay the post against the recording."""
    started = ctx.conv.started_at
    if started is None:
        return None
    return max(0, int((ctx.now - started).total_seconds() * 1000))


async def _post(ctx: Context, post_id: int) -> BackchannelPost:
    post = await ctx.db.get(BackchannelPost, post_id)
    if post is None or post.conversation_id != ctx.conv.id or post.deleted_at is not None:
        raise ActionError("not_found", f"no post {post_id} in this conversation")
    return post


async def delete_post(ctx: Context, action: p.BackchannelDelete) -> None:
    post = await _post(ctx, action.post_id)
    await soft_delete(ctx, post, "post", "backchannel.deleted", "post_id")


async def react(ctx: Context, action: p.BackchannelReact) -> None:
    post = await _post(ctx, action.post_id)
    require_not_blocked(ctx)
    require_state(ctx)
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
