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
`context`. Actions wait for their conversation's writer in arrival order; chat messages and
backchannel posts that wait together are stored in one transaction (`group`), each checked and
answered as if alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from junto.events import delivery
from junto.room import backchannel, chat, group, stage
from junto.room import protocol as p
from junto.room.context import Context, open_action
from junto.room.group import Job
from junto.room.protocol import ActionError
from junto.room.views import snapshot, viewer_info
from junto.storage.engine import BUSY_RETRY_AFTER_S, PoolTimeout
from junto.storage.tables import Conversation, User

if TYPE_CHECKING:
    from junto.events.log import StoredEvent
    from junto.node import Node

__all__ = ["ActionError", "dispatch", "snapshot", "viewer_info"]

log = logging.getLogger("junto.room")


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
    job = Job(node, conversation.id, actor, action)
    # Wait for this conversation's writer (junto.storage.engine.WriteQueue): waiting there holds
    # no connection that readers need (issue 12), and posts that wait together are stored in
    # one transaction (junto.room.group).
    events = await node.writes.submit(
        conversation.id, job, _write, groups=type(action) in group.POSTS
    )
    return events[-1] if events else None


async def _write(jobs: list[Job]) -> list[list[StoredEvent] | BaseException]:
    """Carry out one conversation's queued jobs (the writer's turn): together if there are
    several posts, else, or if storing them together failed, one by one. Each job's events
    are delivered after its commit, in id order; its outcome is its events or its refusal."""
    if len(jobs) > 1:
        node, conversation_id = jobs[0].node, jobs[0].conversation_id
        try:
            async with node.writes.turn(conversation_id):
                outcomes = await group.store_together(jobs)
        except PoolTimeout:
            return [_busy() for _ in jobs]
        except ActionError as refused:  # refused to them all: the conversation is gone
            return [refused for _ in jobs]
        except group.NotStored:
            # Rolled back whole: stored one by one, the post that broke it fails alone.
            log.warning("storing posts together failed; one by one instead", exc_info=True)
        else:
            stored = [
                event for outcome in outcomes if isinstance(outcome, list) for event in outcome
            ]
            await delivery.deliver(node.hub, stored)
            return list(outcomes)
    return [await _alone(job) for job in jobs]


async def _alone(job: Job) -> list[StoredEvent] | BaseException:
    """One action in its own transaction: checked, stored, committed, then delivered."""
    node = job.node
    try:
        async with node.writes.turn(job.conversation_id), node.db() as db:
            ctx = await open_action(node, db, job.conversation_id, job.actor)
            await _HANDLERS[type(job.action)](ctx, job.action)
            await db.commit()
    except PoolTimeout:
        # Nothing was stored: the connection is taken before the first statement.
        return _busy()
    except Exception as exc:  # its caller gets it, as if it had carried the action out itself
        return exc
    await delivery.deliver(node.hub, ctx.events)
    return ctx.events


def _busy() -> ActionError:
    return ActionError(
        "busy", "the node is busy; try again in a moment", retry_after=BUSY_RETRY_AFTER_S
    )


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
