"""What the room, conversation and transcript pages show alike (here, so that none of those
pages imports another for it: the room page hands ended conversations to the conversation page).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import Role
from junto.storage.tables import Conversation, Participant, User

STATE_LABELS = {
    "scheduled": "Scheduled",
    "live": "Live",
    "ended": "Ended",
    "published": "Published",
}


async def hosts_of(db: AsyncSession, conv: Conversation) -> list[User]:
    """Hosts first, then co-hosts; the creator if no participant row names a host."""
    rows = await db.execute(
        select(User, Participant.role)
        .join(Participant, Participant.user_id == User.id)
        .where(
            Participant.conversation_id == conv.id,
            Participant.role.in_([Role.HOST, Role.COHOST]),
        )
    )
    pairs = sorted(rows.all(), key=lambda r: (r[1] != Role.HOST, r[0].display_name.lower()))
    hosts = [user for user, _role in pairs]
    if not hosts:
        creator = await db.get(User, conv.created_by)
        if creator is not None:
            hosts.append(creator)
    return hosts
