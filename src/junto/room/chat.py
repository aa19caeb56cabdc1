"""The text box (chat): send, edit and delete messages; slow mode."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from junto.conversations import iso
from junto.room import protocol as p
from junto.room.context import Context, clean_body, require_not_blocked, require_state, soft_delete
from junto.room.protocol import ActionError
from junto.room.views import message_dict
from junto.storage.tables import ChatMessage


async def send(ctx: Context, action: p.ChatSend) -> None:
    message = await new_message(ctx, action)
    ctx.db.add(message)
    await ctx.db.flush()
    await ctx.emit(*sent(message, ctx))


async def new_message(ctx: Context, action: p.ChatSend) -> ChatMessage:
    """The message `action` asks for, checked and not yet added (a group stores many at once).

    Slow mode reads the author's last message with the session's autoflush, so a message of
    theirs earlier in the same group counts too."""
    require_not_blocked(ctx)
    require_state(ctx)
    body = clean_body(action.body, ctx.node.settings.limits.chat_max_chars)
    await _check_slow_mode(ctx)
    return ChatMessage(
        conversation_id=ctx.conv.id, author_id=ctx.actor.id, body=body, created_at=ctx.now
    )


def sent(message: ChatMessage, ctx: Context) -> tuple[str, dict[str, Any]]:
    """The event announcing a stored message (its id is known once flushed)."""
    return "chat.message", {"message": message_dict(message, ctx.actor)}


async def _check_slow_mode(ctx: Context) -> None:
    """Slow mode: each person waits `slow_mode_seconds` after their last chat message."""
    seconds = ctx.conv.slow_mode_seconds
    if seconds <= 0 or ctx.is_moderator:
        return
    last = (
        await ctx.db.execute(
            # Deleted messages count too, or deleting one would be a way round slow mode.
            select(func.max(ChatMessage.created_at)).where(
                ChatMessage.conversation_id == ctx.conv.id, ChatMessage.author_id == ctx.actor.id
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


async def _message(ctx: Context, message_id: int) -> ChatMessage:
    message = await ctx.db.get(ChatMessage, message_id)
    if message is None or message.conversation_id != ctx.conv.id or message.deleted_at is not None:
        raise ActionError("not_found", f"no message {message_id} in this conversation")
    return message


async def edit(ctx: Context, action: p.ChatEdit) -> None:
    message = await _message(ctx, action.message_id)
    if message.author_id != ctx.actor.id:
        raise ActionError("forbidden", "only the author can edit a message")
    require_not_blocked(ctx)
    require_state(ctx)
    body = clean_body(action.body, ctx.node.settings.limits.chat_max_chars)
    if body == message.body:
        return
    message.body = body
    message.edited_at = ctx.now
    await ctx.db.flush()
    await ctx.emit(
        "chat.edited", {"message_id": message.id, "body": body, "edited_at": iso(message.edited_at)}
    )


async def delete_message(ctx: Context, action: p.ChatDelete) -> None:
    # Allowed in any state: a host may clean up an ended conversation's archive.
    message = await _message(ctx, action.message_id)
    await soft_delete(ctx, message, "message", "chat.deleted", "message_id")
