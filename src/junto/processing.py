"""What happens to a conversation after it ends: its transcript is built and its video rendered.

Both are jobs (junto.jobs) that wait until every recording piece of the conversation has been
finalized, so ending a conversation only has to queue them. `unique` makes a repeated call (a
second "end" request, a retry after a crash) harmless.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from junto.jobs import queue

AFTER_END_KINDS = ("transcript.build", "composite.render")


async def after_end(db: AsyncSession, conversation_id: int) -> None:
    """Queue the work that turns an ended conversation's recordings into its transcript and
    composite recording (the caller commits)."""
    for kind in AFTER_END_KINDS:
        await queue.enqueue(
            db,
            kind,
            {"conversation_id": conversation_id},
            conversation_id=conversation_id,
            unique=True,
        )
