"""The durable job queue: rows of the `jobs` table, handed to workers under a lease.

A job is `queued` until a worker claims it; it is then `running` under a lease (`lease_until`)
that the worker renews while it works. A worker that dies stops renewing, and once the lease has
expired any worker may claim the job again. A handler's outcome moves the job to `succeeded`,
back to `queued` (a retry after backoff, or a wait that is not an attempt), or to `failed`.

Ready jobs are claimed in (priority, id) order: lowest priority first (set from the job's kind,
junto.jobs.registry.PRIORITIES), oldest first among equals. A running job is never preempted;
a more urgent job simply goes to the next worker that asks.

Functions that take an `AsyncSession` leave committing to the caller, so a job can be queued in
the same transaction as the change that calls for it. Functions that take an
`async_sessionmaker` are the worker's side: each runs and commits its own short transaction,
because its change must be atomic on its own (claiming) or must not wait for anything else.
Every worker-side update is conditional on the job still being this worker's, so a worker that
lost its lease cannot overwrite what the job's new owner does.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from junto.enums import JobState
from junto.jobs.registry import priority_of
from junto.storage.tables import Job
from junto.storage.types import utcnow

DEFAULT_LEASE_S = 30.0
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 600.0
# A job that keeps saying "not ready yet" (junto.jobs.context.NotReady) gives up this long after
# it was queued: whatever it waits for is not coming.
MAX_WAIT = timedelta(hours=6)
ERROR_MAX_CHARS = 4000
NOTE_MAX_CHARS = 200
ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)

Sessions = async_sessionmaker[AsyncSession]


class JobError(Exception):
    """A request about a job that cannot be honoured; `status` is the matching HTTP status."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def canonical_payload(payload: Mapping[str, Any]) -> str:
    """The payload as stored: sorted keys and no spaces, so equal payloads are equal strings."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def backoff_seconds(attempt: int) -> float:
    """How long a job waits after its `attempt`-th attempt failed: 5 s, 10 s, 20 s ... 10 min."""
    return float(min(BACKOFF_BASE_S * 2 ** max(attempt - 1, 0), BACKOFF_CAP_S))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- the producer's side (caller commits) -------------------------------------------------------


async def enqueue(
    db: AsyncSession,
    kind: str,
    payload: Mapping[str, Any],
    *,
    conversation_id: int | None = None,
    max_attempts: int = 5,
    delay_s: float = 0,
    unique: bool = False,
) -> Job:
    """Queue a job (the caller commits) and return it, with its id assigned.

    `unique=True` returns the queued or running job of the same kind and payload if there is
    one. Two transactions queueing the same unique job at the same moment may both insert it;
    callers that care hold a lock that serialises them (ending a conversation locks its row).
    """
    body = canonical_payload(payload)
    if unique:
        existing = await db.scalar(
            select(Job)
            .where(Job.kind == kind, Job.payload == body, Job.state.in_(ACTIVE_STATES))
            .order_by(Job.id)
            .limit(1)
        )
        if existing is not None:
            _due_now_if_postponed(existing, delay_s)
            return existing
    now = utcnow()
    job = Job(
        kind=kind,
        priority=priority_of(kind),
        payload=body,
        conversation_id=conversation_id,
        state=JobState.QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        run_after=now + timedelta(seconds=delay_s),
        progress=0.0,
        progress_note="",
        created_at=now,
        updated_at=now,
    )
    db.add(job)
    await db.flush()
    return job


def _due_now_if_postponed(job: Job, delay_s: float) -> None:
    """Asking now for a unique job that postponed itself (NotReady) makes it due now: whatever
    it waited for is probably what asks (a piece's finalize asks for its track), so it should
    not sleep out its postponement. A job backing off after a failure (its error is set)
    keeps its backoff; a running one is left alone."""
    now = utcnow()
    due = now + timedelta(seconds=delay_s)
    postponed = job.state == JobState.QUEUED and job.error is None
    if postponed and job.run_after > due:
        job.run_after = due
        job.updated_at = now


async def retry(db: AsyncSession, job_id: int) -> Job:
    """Queue a failed job again with a fresh set of attempts (the caller commits).

    The error stays visible until the job runs again. Raises JobError (404 no such job,
    409 not failed).
    """
    job = await db.get(Job, job_id)
    if job is None:
        raise JobError(f"no job {job_id}", status=404, code="not_found")
    if job.state != JobState.FAILED:
        raise JobError(
            f"job {job_id} is {job.state.value}; only failed jobs can be retried",
            status=409,
            code="invalid_state",
        )
    now = utcnow()
    job.state = JobState.QUEUED
    job.attempts = 0
    job.run_after = now
    job.worker = None
    job.lease_until = None
    job.finished_at = None
    job.progress = 0.0
    job.progress_note = "queued again"
    job.updated_at = now
    await db.flush()
    return job


async def wake(db: AsyncSession, kind: str, conversation_id: int) -> int:
    """Make the conversation's queued jobs of `kind` due now (the caller commits); returns how
    many. A job that postponed itself to wait for other work (NotReady) is woken by that work
    when it is done, rather than running late, and meanwhile the next claim may have handed a
    worker a long job of lower priority (with one worker, the transcript then waited for the
    whole video render)."""
    now = utcnow()
    result = await db.execute(
        update(Job)
        .where(
            Job.kind == kind,
            Job.conversation_id == conversation_id,
            Job.state == JobState.QUEUED,
            Job.run_after > now,
        )
        .values(run_after=now, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def list_jobs(
    db: AsyncSession,
    conversation_id: int | None = None,
    states: Collection[JobState] | None = None,
    limit: int = 100,
) -> list[Job]:
    """The most recent `limit` jobs (of one conversation, in some states), oldest first."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if conversation_id is not None:
        query = query.where(Job.conversation_id == conversation_id)
    if states is not None:
        query = query.where(Job.state.in_(list(states)))
    newest_first = list((await db.scalars(query)).all())
    return newest_first[::-1]


def payload_of(job: Job) -> dict[str, Any]:
    data = json.loads(job.payload or "{}")
    return data if isinstance(data, dict) else {}


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def job_view(job: Job) -> dict[str, Any]:
    """A job as JSON for the API and the command line."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "progress": round(job.progress, 4),
        "note": job.progress_note,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": job.error,
        "conversation_id": job.conversation_id,
        "payload": payload_of(job),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "updated_at": _iso(job.updated_at),
        "run_after": _iso(job.run_after),
    }


# ---- the worker's side (each function commits its own transaction) ------------------------------


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Ready to run: queued and due, or running under a lease that expired (a dead worker's
    job) with attempts left."""
    return or_(
        and_(Job.state == JobState.QUEUED, Job.run_after <= now),
        and_(
            Job.state == JobState.RUNNING,
            Job.lease_until < now,
            Job.attempts < Job.max_attempts,
        ),
    )


def _abandoned(now: datetime) -> ColumnElement[bool]:
    """Running under an expired lease with no attempts left: its workers keep dying."""
    return and_(
        Job.state == JobState.RUNNING,
        Job.lease_until < now,
        Job.attempts >= Job.max_attempts,
    )


def _claim_values(worker: str, now: datetime, lease_s: float) -> dict[str, Any]:
    return {
        "state": JobState.RUNNING,
        "worker": worker[:64],
        "lease_until": now + timedelta(seconds=lease_s),
        "started_at": now,
        "attempts": Job.attempts + 1,
        "progress": 0.0,
        "error": None,
        "updated_at": now,
    }


def _abandon_values(now: datetime) -> dict[str, Any]:
    return {
        "state": JobState.FAILED,
        "error": "the worker running this job stopped responding on every attempt "
        "(it may crash or run out of memory on this job)",
        "lease_until": None,
        "finished_at": now,
        "updated_at": now,
    }


async def claim(
    sessions: Sessions,
    worker: str,
    kinds: Collection[str] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
) -> Job | None:
    """Take the most urgent ready job (of `kinds`, or any kind) for `worker`, or None: the
    lowest priority, then the oldest.

    Safe with any number of workers in any number of processes: on PostgreSQL the candidate row
    is locked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers pass over each other's rows;
    on SQLite, which serialises writers, the claim is a conditional UPDATE that re-checks that
    the job is still ready, so of two claimers that saw the same job only one changes it.
    Expired jobs with no attempts left are marked failed on the way.
    """
    async with sessions() as db:
        dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return await _claim_locking(sessions, worker, kinds, lease_s)
    return await _claim_conditional(sessions, worker, kinds, lease_s)


async def _claim_locking(
    sessions: Sessions, worker: str, kinds: Collection[str] | None, lease_s: float
) -> Job | None:
    now = utcnow()
    async with sessions() as db, db.begin():
        while True:
            query = (
                select(Job)
                .where(or_(_claimable(now), _abandoned(now)))
                .order_by(Job.priority, Job.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if kinds is not None:
                query = query.where(Job.kind.in_(list(kinds)))
            job = await db.scalar(query)
            if job is None:
                return None
            if job.state == JobState.RUNNING and job.attempts >= job.max_attempts:
                await db.execute(update(Job).where(Job.id == job.id).values(_abandon_values(now)))
                continue
            result = await db.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(_claim_values(worker, now, lease_s))
                .returning(Job)
                .execution_options(populate_existing=True)
            )
            claimed: Job = result.scalar_one()
            return claimed


async def _claim_conditional(
    sessions: Sessions, worker: str, kinds: Collection[str] | None, lease_s: float
) -> Job | None:
    # Reading and writing in separate transactions keeps SQLite from upgrading a read
    # transaction to a write one (which fails at once with "database is locked" when another
    # writer got there first, busy_timeout or not); the UPDATE re-checks readiness instead.
    for _ in range(20):
        now = utcnow()
        query = (
            select(Job.id, Job.state, Job.attempts, Job.max_attempts)
            .where(or_(_claimable(now), _abandoned(now)))
            .order_by(Job.priority, Job.id)
            .limit(8)
        )
        if kinds is not None:
            query = query.where(Job.kind.in_(list(kinds)))
        async with sessions() as db:
            candidates = (await db.execute(query)).all()
        if not candidates:
            return None
        for job_id, state, attempts, max_attempts in candidates:
            async with sessions() as db:
                if state == JobState.RUNNING and attempts >= max_attempts:
                    await db.execute(
                        update(Job)
                        .where(Job.id == job_id, _abandoned(now))
                        .values(_abandon_values(now))
                    )
                    await db.commit()
                    continue
                result = await db.execute(
                    update(Job)
                    .where(Job.id == job_id, _claimable(now))
                    .values(_claim_values(worker, now, lease_s))
                    .returning(Job)
                    .execution_options(populate_existing=True)
                )
                claimed = result.scalar_one_or_none()
                await db.commit()
                if claimed is not None:
                    return claimed
        # Every candidate was taken by someone else between our read and our write: look again.
    return None


def _mine(job_id: int, worker: str) -> ColumnElement[bool]:
    return and_(Job.id == job_id, Job.worker == worker[:64], Job.state == JobState.RUNNING)


async def _update_mine(
    sessions: Sessions, job_id: int, worker: str, values: Mapping[str, Any]
) -> bool:
    async with sessions() as db:
        result = await db.execute(update(Job).where(_mine(job_id, worker)).values(dict(values)))
        await db.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def heartbeat(
    sessions: Sessions, job_id: int, worker: str, lease_s: float = DEFAULT_LEASE_S
) -> bool:
    """Renew the lease. False if the job is no longer this worker's (its lease was lost)."""
    now = utcnow()
    values = {"lease_until": now + timedelta(seconds=lease_s), "updated_at": now}
    return await _update_mine(sessions, job_id, worker, values)


async def progress(
    sessions: Sessions,
    job_id: int,
    worker: str,
    fraction: float,
    note: str | None = None,
    *,
    lease_s: float = DEFAULT_LEASE_S,
) -> bool:
    """Record progress (0..1, and a note unless None) and renew the lease.

    Ignored (False) if the job is no longer this worker's.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "progress": min(max(float(fraction), 0.0), 1.0),
        "lease_until": now + timedelta(seconds=lease_s),
        "updated_at": now,
    }
    if note is not None:
        values["progress_note"] = _clip(note, NOTE_MAX_CHARS)
    return await _update_mine(sessions, job_id, worker, values)


async def succeed(sessions: Sessions, job_id: int, worker: str) -> bool:
    """The job is done. The progress note the handler left stays (e.g. "nothing was recorded")."""
    now = utcnow()
    values = {
        "state": JobState.SUCCEEDED,
        "progress": 1.0,
        "error": None,
        "lease_until": None,
        "finished_at": now,
        "updated_at": now,
    }
    return await _update_mine(sessions, job_id, worker, values)


async def release(sessions: Sessions, job_id: int, worker: str) -> bool:
    """Give the job back without counting the attempt (the worker is shutting down)."""
    now = utcnow()
    values = {
        "state": JobState.QUEUED,
        "attempts": Job.attempts - 1,
        "worker": None,
        "lease_until": None,
        "run_after": now,
        "updated_at": now,
    }
    return await _update_mine(sessions, job_id, worker, values)


async def fail(
    sessions: Sessions, job_id: int, worker: str, error: str, *, permanent: bool = False
) -> JobState | None:
    """The attempt failed: retry after backoff while attempts are left, else FAILED.

    Returns the job's new state, or None if the job was no longer this worker's.
    """
    now = utcnow()
    async with sessions() as db:
        job = await db.scalar(select(Job).where(_mine(job_id, worker)))
        if job is None:
            return None
        text = _clip(error.strip() or "failed without a message", ERROR_MAX_CHARS)
        values: dict[str, Any] = {
            "error": text,
            "worker": None,
            "lease_until": None,
            "updated_at": now,
        }
        if permanent or job.attempts >= job.max_attempts:
            state = JobState.FAILED
            values.update(finished_at=now)
        else:
            state = JobState.QUEUED
            wait = backoff_seconds(job.attempts)
            values.update(
                run_after=now + timedelta(seconds=wait),
                progress_note=f"attempt {job.attempts} failed; trying again in {wait:.0f} s",
            )
        values["state"] = state
        result = await db.execute(
            update(Job).where(_mine(job_id, worker), Job.attempts == job.attempts).values(values)
        )
        await db.commit()
        return state if result.rowcount else None  # type: ignore[attr-defined]


async def postpone(
    sessions: Sessions, job_id: int, worker: str, seconds: float, reason: str
) -> JobState | None:
    """The job is not ready to run yet (NotReady): try again in `seconds`, without counting
    this as an attempt. A job still waiting MAX_WAIT after it was queued fails for good.

    Returns the job's new state, or None if the job was no longer this worker's.
    """
    now = utcnow()
    async with sessions() as db:
        job = await db.scalar(select(Job).where(_mine(job_id, worker)))
        if job is None:
            return None
        values: dict[str, Any] = {
            "attempts": Job.attempts - 1,
            "worker": None,
            "lease_until": None,
            "updated_at": now,
            "progress_note": _clip(reason, NOTE_MAX_CHARS),
        }
        if now - job.created_at > MAX_WAIT:
            hours = MAX_WAIT.total_seconds() / 3600
            state = JobState.FAILED
            values.update(
                error=f"gave up after waiting more than {hours:g} hours: {reason}",
                finished_at=now,
            )
        else:
            state = JobState.QUEUED
            values.update(run_after=now + timedelta(seconds=max(seconds, 0.0)))
        values["state"] = state
        result = await db.execute(update(Job).where(_mine(job_id, worker)).values(values))
        await db.commit()
        return state if result.rowcount else None  # type: ignore[attr-defined]
