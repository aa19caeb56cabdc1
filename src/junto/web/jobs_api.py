"""JSON API for a conversation's background jobs (transcription, rendering): progress and retry.

The same rule as the conversation's page (`conversations.can_see_page`): under review (ended,
not published) its jobs are for its reviewers only, and everyone else gets the 404 the
transcript gives. Those who may see them but do not manage the conversation get coarse
progress only (kind, state, progress): who a job is about (a speaker's name), its note and its
error (which can name files and programs) are for hosts, co-hosts and admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto import conversations as convs
from junto import processing
from junto.conversations import ConversationError
from junto.jobs import queue
from junto.storage.tables import Conversation, Job, Recording, User
from junto.web.conversations_api import (
    ErrorOut,
    Slug,
    answering,
    error_response,
    visible_record,
)
from junto.web.deps import DbDep
from junto.web.security import CurrentUser, RequireIdentity

router = APIRouter(
    prefix="/api", tags=["jobs"], route_class=answering(ConversationError, error_response)
)


class JobOut(BaseModel):
    id: int
    kind: str = Field(description="composite.render, transcript.build, transcript.track, ...")
    state: str = Field(description="queued, running, succeeded or failed.")
    progress: float = Field(ge=0, le=1, description="How far it is, 0..1.")
    note: str = Field(
        description="What it is doing or waiting for, for people; empty unless you manage "
        "the conversation."
    )
    attempts: int
    max_attempts: int
    error: str | None = Field(
        description="Why it failed (last attempt); only for hosts, co-hosts and admins."
    )
    subject: str | None = Field(
        description="Whose recording a per-recording job is about (a display name), if any; "
        "only for hosts, co-hosts and admins."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "Not signed in (or not even a guest).",
        403: "You may not retry this job (hosts and co-hosts of its conversation may).",
        404: "No such job or conversation, or one you may not see.",
        409: "The job has not failed (only failed jobs can be retried).",
    }
    return {code: {"model": ErrorOut, "description": described[code]} for code in codes}


JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The job's id.")]


async def _subjects(db: AsyncSession, jobs: list[Job]) -> dict[int, str]:
    """Display names of the speakers whose recordings per-recording jobs are about."""
    wanted = {
        int(rid): job.id
        for job in jobs
        if isinstance(rid := queue.payload_of(job).get("recording_id"), int)
    }
    if not wanted:
        return {}
    rows = await db.execute(
        select(Recording.id, User.display_name)
        .join(User, User.id == Recording.user_id)
        .where(Recording.id.in_(wanted))
    )
    return {wanted[int(rid)]: str(name) for rid, name in rows.all()}


def job_out(job: Job, *, full: bool, subject: str | None = None) -> JobOut:
    """The job as its conversation's managers see it (`full`), or its coarse progress."""
    view: dict[str, Any] = queue.job_view(job)
    return JobOut(
        id=job.id,
        kind=job.kind,
        state=view["state"],
        progress=view["progress"],
        note=view["note"] if full else "",
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error=job.error if full else None,
        subject=subject if full else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.get(
    "/conversations/{slug}/jobs",
    response_model=list[JobOut],
    summary="The conversation's background jobs and their progress",
    responses=_errors(404),
)
async def list_conversation_jobs(slug: Slug, db: DbDep, user: CurrentUser) -> list[JobOut]:
    """In the order the jobs ran and will run: finished, running, then queued in the order
    workers claim them (the transcript first, then knowledge and search, then the video).
    Unless you manage the conversation, `note` is empty and `subject` and `error` are null;
    under review (ended, not published) only its reviewers see its jobs."""
    conv = await visible_record(db, slug, user)
    jobs = processing.run_order(await queue.list_jobs(db, conversation_id=conv.id))
    if not await convs.can_manage(db, conv, user):
        return [job_out(j, full=False) for j in jobs]
    subjects = await _subjects(db, jobs)
    return [job_out(j, full=True, subject=subjects.get(j.id)) for j in jobs]


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobOut,
    summary="Run a failed job again (hosts and co-hosts of its conversation, admins)",
    responses=_errors(401, 403, 404, 409),
)
async def retry_job(job_id: JobId, db: DbDep, user: RequireIdentity) -> JobOut:
    job = await db.get(Job, job_id)
    if job is None:
        raise ConversationError(f"no job {job_id}", status=404, code="not_found")
    if job.conversation_id is None:
        if not user.is_admin:
            raise ConversationError(
                "only node administrators may retry this job", status=403, code="forbidden"
            )
    else:
        conv = await db.get(Conversation, job.conversation_id)
        if conv is None or not await convs.can_view(db, conv, user):
            raise ConversationError(f"no job {job_id}", status=404, code="not_found")
        await convs.require_manager(db, conv, user, "retry the jobs of")
    try:
        job = await queue.retry(db, job_id)
    except queue.JobError as exc:
        raise ConversationError(exc.message, status=exc.status, code=exc.code) from exc
    await db.commit()
    subjects = await _subjects(db, [job])
    return job_out(job, full=True, subject=subjects.get(job.id))
