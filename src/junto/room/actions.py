"""What people do in a room: every client action of docs/protocol.md, checked, stored, announced.

`dispatch` is the single entry point for the WebSocket hub and the REST mirror, so the rules are
the same whichever way a message arrives. For each action, in order: the frame is validated
(`bad_message`), the sender must have an identity (`not_signed_in`), content actions are
rate-limited per person (`rate_limited`), and then, inside one transaction that holds the
conversation's lock: role permission (`forbidden`), block (`blocked`), conversation state
(`invalid_state`), size (`too_large`) and slow mode (`slow_mode`). The entity rows and the room
events are written in that same transaction, committed, and only then delivered to the hub, so
no client ever sees an event that was not stored, and a refused action stores nothing.

The rules of each kind of action are in `chat`, `backchannel` and `stage` (hands, roles, blocks,
settings, consent); what every action shares (the locked conversation, the common checks) in
`context`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from junto.events import delivery
from junto.room import backchannel, chat, stage
from junto.room import protocol as p
from junto.room.context import Context, open_action
from junto.room.protocol import ActionError
from junto.room.views import snapshot, viewer_info
from junto.storage.engine import BUSY_RETRY_AFTER_S, PoolTimeout
from junto.storage.tables import Conversation, User

if TYPE_CHECKING:
    from junto.events.log import StoredEvent
    from junto.node import Node

__all__ = ["ActionError", "dispatch", "snapshot", "viewer_info"]


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
    # the lock taken in `open_action` would make us wait anyway, and waiting here holds no
    # connection that readers need (junto.storage.engine.WriteQueue, issue 12).
    async with node.writes.turn(conversation.id):
        try:
            async with node.db() as db:
                ctx = await open_action(node, db, conversation.id, actor)
                await handler(ctx, action)
                await db.commit()
        except PoolTimeout:
            # Nothing was stored: the connection is taken before the first statement.
            raise ActionError(
                "busy", "the node is busy; try again in a moment", retry_after=BUSY_RETRY_AFTER_S
            ) from None
    await delivery.deliver(node.hub, ctx.events)
    return ctx.events[-1] if ctx.events else None


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


_Handler = Callable[[Context, Any], Awaitable[None]]
_HANDLERS: dict[type[p.Frame], _Handler] = {
    p.ChatSend: chat.send,
    p.ChatEdit: chat.edit,
    p.ChatDelete: chat.delete_message,
    p.BackchannelPost: backchannel.post,
    p.BackchannelDelete: backchannel.delete_post,
    p.BackchannelReact: backchannel.react,
    p.HandRaise: stage.hand_raise,
    p.HandLower: stage.hand_lower,
    p.StageInvite: stage.invite,
    p.StageRemove: stage.remove,
    p.StageLeave: stage.leave,
    p.RoleSet: stage.role_set,
    p.ParticipantBlock: stage.block,
    p.ParticipantUnblock: stage.unblock,
    p.RoomSettings: stage.settings,
    p.MediaConsentGive: stage.consent,
}
