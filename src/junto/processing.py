"""What happens to a conversation after it ends, and after its transcript changes.

Ending queues the transcript and the composite video: jobs (junto.jobs) that wait until every
recording piece of the conversation has been finalized, so ending only has to queue them;
`unique` makes a repeated call (a second "end" request, a retry after a crash) harmless.

A new or corrected transcript queues what is learnt from it: the knowledge (summary, chapters,
items, topics) and the search index. Those jobs read the transcript when they run, so a job
still queued already covers a newer correction; a running one may have read the old text, so
then another is queued.

Workers take this work in priority order (junto.jobs.registry): the transcript, then knowledge
and search, then the composite video. `run_order` and `checklist` tell people the same: the
processing panel lists jobs in the order they ran and will run, and the review page's checklist
says for each result whether it is ready, being made, waiting its turn, failed or not coming.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import JobState
from junto.jobs import queue
from junto.speech.models import unsupported_language
from junto.storage.tables import Conversation, Job, Recording, SearchPassage, TrackTranscript
from junto.storage.types import utcnow

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


# ---- what is still coming -----------------------------------------------------------------------

TRANSCRIPT_KINDS = ("recording.finalize", "transcript.track", "transcript.build")
TRANSCRIPT, KNOWLEDGE, SEARCH, VIDEO = "Transcript", "Summary and chapters", "Search", "Video"
# The review page's checklist, in the order workers run the work (junto.jobs.registry).
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (TRANSCRIPT, TRANSCRIPT_KINDS),
    (KNOWLEDGE, ("knowledge.extract",)),
    (SEARCH, ("search.index",)),
    (VIDEO, ("composite.render",)),
)
# Queued by the transcript build (after_transcript): coming while the transcript is.
_AFTER_TRANSCRIPT_STEPS = (KNOWLEDGE, SEARCH)
_FINISHED = (JobState.SUCCEEDED, JobState.FAILED)


def run_order(jobs: Iterable[Job], now: datetime | None = None) -> list[Job]:
    """`jobs` in the order they ran and will run: finished ones as they finished, running ones
    as they started, then queued ones as workers will claim them (priority, then when due,
    then age: junto.jobs.queue.claim)."""
    at = now or utcnow()

    def key(job: Job) -> tuple[int, int, datetime, int]:
        if job.state in _FINISHED:
            return (0, 0, job.finished_at or job.updated_at, job.id)
        if job.state == JobState.RUNNING:
            return (1, 0, job.started_at or job.updated_at, job.id)
        return (2, job.priority, max(job.run_after, at), job.id)

    return sorted(jobs, key=key)


def _step_jobs(jobs: Sequence[Job], kinds: tuple[str, ...]) -> list[Job]:
    # A snippet's own search.index job (payload {"snippet_id"}) is not the conversation's.
    return [j for j in jobs if j.kind in kinds and "snippet_id" not in queue.payload_of(j)]


def _step_state(jobs: Sequence[Job], made: bool) -> str:
    states = {j.state for j in jobs}
    if states & {JobState.RUNNING, JobState.QUEUED}:
        if made:
            return "updating"
        return "running" if JobState.RUNNING in states else "waiting"
    if made:
        return "ready"
    latest = {j.kind: j for j in jobs}  # jobs come oldest first: the last one of each kind
    if any(j.state == JobState.FAILED for j in latest.values()):
        return "failed"
    return "missing"


async def indexed(db: AsyncSession, conversation_id: int) -> bool:
    """True when search can find the conversation (its passages are stored)."""
    found = await db.scalar(
        select(SearchPassage.id)
        .where(SearchPassage.conversation_id == conversation_id, SearchPassage.snippet_id.is_(None))
        .limit(1)
    )
    return found is not None


async def checklist(
    db: AsyncSession, conversation_id: int, made: Mapping[str, bool]
) -> list[tuple[str, str]]:
    """(step, state) for each of STEPS, in the order they run. `made`: which results exist
    (by step name). States: "ready"; "updating" (ready, and being made again after a
    correction); "running" (a worker is on it); "waiting" (queued, or queued as soon as the
    transcript is built); "failed" (its last job failed: hosts can retry it); "missing"
    (nothing is coming: nothing was recorded, or the step is not done on this node)."""
    rows = await db.scalars(
        select(Job).where(Job.conversation_id == conversation_id).order_by(Job.id)
    )
    jobs = list(rows)
    out: list[tuple[str, str]] = []
    transcript_state = "missing"
    for step, kinds in STEPS:
        state = _step_state(_step_jobs(jobs, kinds), made.get(step, False))
        if step == TRANSCRIPT:
            transcript_state = state
        elif (
            step in _AFTER_TRANSCRIPT_STEPS
            and state == "missing"
            and transcript_state in ("running", "waiting")
        ):
            state = "waiting"
        out.append((step, state))
    return out


async def transcript_model_note(db: AsyncSession, conversation_id: int) -> str | None:
    """Which model made the transcript ("Transcribed with base.en."), or why it could not
    (an English-only model and a conversation in another language); None before any piece
    is transcribed. Reviewers judge a transcript's mistakes knowing what made it."""
    models = list(
        (
            await db.scalars(
                select(TrackTranscript.model)
                .join(Recording, Recording.id == TrackTranscript.recording_id)
                .where(Recording.conversation_id == conversation_id)
                .distinct()
            )
        ).all()
    )
    if not models:
        return None
    conv = await db.get(Conversation, conversation_id)
    for model in models:
        why = unsupported_language(model, conv.language if conv else "", "JUNTO_TRANSCRIPT_MODEL")
        if why is not None:
            return why
    return f"Transcribed with {', '.join(sorted(models))}."
