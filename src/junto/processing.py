"""What happens to a conversation after it ends, and after its transcript changes.

Ending queues the transcript and the composite video: jobs (junto.jobs) that wait until every
recording piece of the conversation has been finalized, so ending only has to queue them;
`unique` makes a repeated call (a second "end" request, a retry after a crash) harmless.

A new or corrected transcript queues what is learnt from it: the knowledge (summary, chapters,
items, topics) and the search index. Those jobs read the transcript when they run, so a job
still queued already covers a newer correction; a running one may have read the old text, so
then another is queued.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.jobs import queue
from junto.storage.tables import Job, JobState

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


AFTER_TRANSCRIPT_KINDS = ("knowledge.extract", "search.index")
# Hosts correct segment after segment: waiting a moment lets one run cover a burst of edits.
EDIT_SETTLE_S = 3.0


async def after_transcript(db: AsyncSession, conversation_id: int, *, delay_s: float = 0) -> None:
    """Queue the knowledge and search-index jobs for a conversation whose transcript was just
    built or corrected, unless one is already waiting to run (the caller commits)."""
    payload = {"conversation_id": conversation_id}
    body = queue.canonical_payload(payload)
    for kind in AFTER_TRANSCRIPT_KINDS:
        waiting = await db.scalar(
            select(Job.id)
            .where(Job.kind == kind, Job.payload == body, Job.state == JobState.QUEUED)
            .limit(1)
        )
        if waiting is None:
            await queue.enqueue(db, kind, payload, conversation_id=conversation_id, delay_s=delay_s)
