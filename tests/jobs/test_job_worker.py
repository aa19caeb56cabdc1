"""A worker running handlers in-process: outcomes, progress, stopping, losing the lease."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

from jobs_support import Sessions, load, sessions_fixture, succeeded  # noqa: F401 - fixture
from sqlalchemy import update

from helpers import eventually
from junto.config import Settings
from junto.enums import JobState
from junto.jobs import queue, registry
from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.jobs.worker import run_worker
from junto.storage.tables import Job
from junto.storage.types import utcnow

started = threading.Event()


async def reports_from_a_thread(ctx: JobContext) -> None:
    def work() -> None:
        for i in range(1, 11):
            ctx.progress_from_thread(i / 20, f"step {i}")
            time.sleep(0.01)

    await asyncio.to_thread(work)
    await ctx.progress(1.0, f"all done for {ctx.payload['who']}")


async def finishes_while_a_report_is_queued(ctx: JobContext) -> None:
    # A thread's last report reaches the loop just as the handler reports that it is done.
    ctx.progress_from_thread(0.99, "transcribing")
    await ctx.progress(1.0, "42 words")


async def not_ready(ctx: JobContext) -> None:
    raise NotReady(30, "waiting for the recordings")


async def gives_up(ctx: JobContext) -> None:
    raise JobFailed("the file is not a recording")


async def breaks(ctx: JobContext) -> None:
    raise ValueError("unexpected value 42")


async def runs_forever(ctx: JobContext) -> None:
    started.set()
    await asyncio.sleep(3600)


for kind, handler in {
    "test.thread": reports_from_a_thread,
    "test.late_report": finishes_while_a_report_is_queued,
    "test.not_ready": not_ready,
    "test.gives_up": gives_up,
    "test.breaks": breaks,
    "test.forever": runs_forever,
}.items():
    registry.register(kind, handler)


async def put(sessions: Sessions, kind: str, payload: dict[str, object] | None = None) -> int:
    async with sessions() as db:
        job = await queue.enqueue(db, kind, payload or {})
        await db.commit()
        return job.id


async def test_outcomes_of_handlers(settings: Settings, sessions: Sessions) -> None:
    ok = await put(sessions, "test.thread", {"who": "Ana"})
    wait = await put(sessions, "test.not_ready")
    permanent = await put(sessions, "test.gives_up")
    broken = await put(sessions, "test.breaks")
    unknown = await put(sessions, "test.nobody_handles_this")

    ran = await run_worker(settings, "w-test", once=True)
    assert ran == 5

    job = await load(sessions, ok)
    assert job.state == JobState.SUCCEEDED and job.progress == 1.0
    assert job.progress_note == "all done for Ana" and job.finished_at is not None

    job = await load(sessions, wait)
    assert job.state == JobState.QUEUED and job.attempts == 0
    assert job.progress_note == "waiting for the recordings" and job.error is None

    job = await load(sessions, permanent)
    assert job.state == JobState.FAILED and job.error == "the file is not a recording"
    assert job.attempts == 1

    job = await load(sessions, broken)
    assert job.state == JobState.QUEUED and job.attempts == 1
    assert job.error == "ValueError: unexpected value 42"

    job = await load(sessions, unknown)
    assert job.state == JobState.FAILED
    assert job.error == "no handler for kind test.nobody_handles_this"


async def test_progress_is_written_while_the_job_runs(
    settings: Settings, sessions: Sessions
) -> None:
    gate = asyncio.Event()
    seen: list[tuple[float, str]] = []

    async def slow(ctx: JobContext) -> None:
        for i in range(1, 5):
            await ctx.progress(i / 5, f"part {i}")
            await asyncio.sleep(0.3)
        await gate.wait()

    registry.register("test.slow", slow)
    job_id = await put(sessions, "test.slow")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, "w-slow", stop_event=stop))

    async def at_part_4() -> bool:
        job = await load(sessions, job_id)
        if (job.progress, job.progress_note) not in seen:
            seen.append((job.progress, job.progress_note))
        return bool(job.progress_note == "part 4")

    try:
        await eventually(at_part_4, 10)
        gate.set()
        await eventually(lambda: succeeded(sessions, job_id), 10)
    finally:
        stop.set()
        await worker
    notes = [note for _, note in seen]
    assert notes[-1] == "part 4" and "part 2" in notes, notes


async def test_a_late_report_never_undoes_the_final_one(
    settings: Settings, sessions: Sessions
) -> None:
    job_id = await put(sessions, "test.late_report")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, "w-late", stop_event=stop))
    try:
        await eventually(lambda: succeeded(sessions, job_id), 10)
        await asyncio.sleep(0.7)  # past the progress interval: a held report would land now
    finally:
        stop.set()
        await worker
    job = await load(sessions, job_id)
    assert (job.progress, job.progress_note) == (1.0, "42 words")


async def test_stopping_the_worker_puts_its_job_back(
    settings: Settings, sessions: Sessions
) -> None:
    started.clear()
    job_id = await put(sessions, "test.forever")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, "w-stop", stop_event=stop))
    assert await asyncio.to_thread(started.wait, 10)
    job = await load(sessions, job_id)
    assert job.state == JobState.RUNNING and job.worker == "w-stop"
    stop.set()
    await asyncio.wait_for(worker, 10)
    job = await load(sessions, job_id)
    assert job.state == JobState.QUEUED and job.attempts == 0 and job.worker is None


async def test_a_worker_that_lost_its_lease_stops_working_on_the_job(
    settings: Settings, sessions: Sessions
) -> None:
    started.clear()
    job_id = await put(sessions, "test.forever")
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(settings, "w-slowpoke", stop_event=stop, lease_s=0.3, kinds=["test.forever"])
    )
    try:
        assert await asyncio.to_thread(started.wait, 10)
        # Another worker took the job over (as if this one had stalled past its lease).
        async with sessions() as db:
            await db.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(worker="w-other", lease_until=utcnow() + timedelta(minutes=5))
            )
            await db.commit()
        await asyncio.sleep(0.6)  # a few heartbeats
        job = await load(sessions, job_id)
        assert job.state == JobState.RUNNING and job.worker == "w-other"
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    # The old worker stopped the handler and left the new owner's job alone.
    job = await load(sessions, job_id)
    assert job.state == JobState.RUNNING and job.worker == "w-other" and job.attempts == 1
