"""A job worker: claims jobs, runs their handlers under a renewed lease, records the outcome.

`junto worker` runs one in its own process (the node starts `settings.workers` of them through
junto.jobs.supervisor). A worker runs one job at a time; run more workers for more at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Collection

from junto.config import Settings
from junto.enums import JobState
from junto.jobs import queue, registry
from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import Job

log = logging.getLogger("junto.jobs")

POLL_S = 0.5  # how often an idle worker looks for work
ERROR_PAUSE_S = 2.0  # after the database failed to answer a claim
TRACK_KIND = "transcript.track"  # the kind whose model a worker loads ahead (warm_up)


async def run_worker(
    settings: Settings,
    name: str,
    *,
    once: bool = False,
    stop_event: asyncio.Event | None = None,
    lease_s: float = queue.DEFAULT_LEASE_S,
    kinds: Collection[str] | None = None,
    handle_signals: bool = False,
    parent_pid: int | None = None,
    warm_up: bool | None = None,
) -> int:
    """Run jobs until `stop_event` is set (or, with `once`, until no job is ready).

    `kinds` limits the worker to some kinds (default: any; a kind nobody handles fails).
    `handle_signals` makes SIGTERM and SIGINT stop the worker: a job in progress is cancelled
    and put back in the queue without counting the attempt, so another worker takes it.
    With `parent_pid`, the worker stops like on SIGTERM once that process is gone.
    `warm_up` loads the transcript model in the background as the worker starts (default: when
    it is a process of its own, `handle_signals` and not `once`), so the first track after a
    conversation ends does not pay for it.
    Returns how many jobs it ran.
    """
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    orphan_watch = (
        loop.create_task(_stop_when_orphaned(parent_pid, stop)) if parent_pid is not None else None
    )
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    if warm_up is None:
        warm_up = handle_signals and not once
    warming = (
        loop.create_task(_warm_up(settings, name))
        if warm_up and (kinds is None or TRACK_KIND in kinds)
        else None
    )
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    ran = 0
    log.info("worker %s ready (lease %.0f s)", name, lease_s)
    try:
        while not stop.is_set():
            try:
                job = await queue.claim(sessions, name, kinds, lease_s)
            except Exception as exc:
                log.warning("worker %s could not claim a job: %s", name, exc)
                await _pause(stop, ERROR_PAUSE_S)
                continue
            if job is None:
                if once:
                    break
                await _pause(stop, POLL_S)
                continue
            try:
                await _run_job(settings, sessions, name, job, lease_s, stop)
            except Exception as exc:
                # Recording the outcome failed (the database went away): the job's lease runs
                # out and it runs again, here or elsewhere.
                log.warning("worker %s could not record job %s: %s", name, job.id, exc)
                await _pause(stop, ERROR_PAUSE_S)
            ran += 1
    finally:
        if orphan_watch is not None:
            orphan_watch.cancel()
        if warming is not None:
            warming.cancel()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        await engine.dispose()
        log.info("worker %s stopped after %d job(s)", name, ran)
    return ran


async def _warm_up(settings: Settings, name: str) -> None:
    """Load the transcript model (1-2 s on 2 cores, more under load) while there is nothing to
    do, rather than on the first track after a conversation ends, when people wait. A track
    claimed meanwhile waits for this load (the model is loaded once per process), not a second
    one. A model that cannot load is the track's error to report, not the worker's."""
    began = time.monotonic()
    try:
        from junto.speech.models import load_model

        await asyncio.to_thread(load_model, settings.transcript_model, settings)
    except Exception as exc:
        log.warning("worker %s could not load %s ahead: %s", name, settings.transcript_model, exc)
        return
    took = time.monotonic() - began
    log.info("worker %s loaded %s ahead in %.1f s", name, settings.transcript_model, took)


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """A node killed with SIGKILL cannot stop its workers; they notice that they were
    re-parented and stop by themselves (their job goes back to the queue)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("the node (pid %d) is gone: stopping", parent_pid)
            stop.set()
            return
        await asyncio.sleep(1.0)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


async def _run_job(
    settings: Settings,
    sessions: queue.Sessions,
    name: str,
    job: Job,
    lease_s: float,
    stop: asyncio.Event,
) -> None:
    label = f"job {job.id} {job.kind}"
    log.info("%s started (attempt %d/%d)", label, job.attempts, job.max_attempts)
    began = time.monotonic()
    try:
        handler = registry.resolve(job.kind)
    except registry.UnknownKind as exc:
        await queue.fail(sessions, job.id, name, str(exc), permanent=True)
        log.error("%s failed: %s", label, exc)
        return
    except Exception as exc:
        message = f"cannot load the handler of {job.kind}: {type(exc).__name__}: {exc}"
        await queue.fail(sessions, job.id, name, message, permanent=True)
        log.error("%s failed: %s", label, message)
        return
    ctx = JobContext(
        job_id=job.id,
        kind=job.kind,
        payload=queue.payload_of(job),
        conversation_id=job.conversation_id,
        attempt=job.attempts,
        settings=settings,
        db=sessions,
        worker=name,
        lease_s=lease_s,
    )
    work = asyncio.create_task(handler(ctx), name=label)
    lost = asyncio.Event()
    keeper = asyncio.create_task(_keep_lease(sessions, job.id, name, lease_s, work, lost))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
        await asyncio.gather(work, return_exceptions=True)
    finally:
        keeper.cancel()
        stopping.cancel()
        await asyncio.gather(keeper, stopping, return_exceptions=True)
    took = f"{time.monotonic() - began:.1f} s"
    if work.cancelled():
        if lost.is_set():
            log.warning("%s: lease lost after %s; another worker owns it now", label, took)
        else:
            await queue.release(sessions, job.id, name)
            log.info("%s interrupted after %s; back in the queue", label, took)
        return
    await ctx.drain()
    await _record_outcome(sessions, name, job, work.exception(), label, took)


async def _record_outcome(
    sessions: queue.Sessions,
    name: str,
    job: Job,
    exc: BaseException | None,
    label: str,
    took: str,
) -> None:
    if exc is None:
        await queue.succeed(sessions, job.id, name)
        log.info("%s succeeded in %s", label, took)
    elif isinstance(exc, NotReady):
        state = await queue.postpone(sessions, job.id, name, exc.seconds, exc.reason)
        if state == JobState.FAILED:
            log.error("%s failed: gave up waiting (%s)", label, exc.reason)
        else:
            log.info("%s not ready (%s); again in %.0f s", label, exc.reason, exc.seconds)
    elif isinstance(exc, JobFailed):
        await queue.fail(sessions, job.id, name, exc.message, permanent=True)
        log.error("%s failed after %s: %s", label, took, _first_line(exc.message))
    else:
        message = f"{type(exc).__name__}: {exc}"
        state = await queue.fail(sessions, job.id, name, message)
        outcome = "failed" if state == JobState.FAILED else "failed, will retry"
        log.error("%s %s after %s: %s", label, outcome, took, _first_line(message), exc_info=exc)


async def _keep_lease(
    sessions: queue.Sessions,
    job_id: int,
    name: str,
    lease_s: float,
    work: asyncio.Task[None],
    lost: asyncio.Event,
) -> None:
    """Renew the lease every third of its length; if the job was taken over (this worker
    stalled past its lease), stop working on it."""
    while not work.done():
        await asyncio.sleep(lease_s / 3)
        try:
            mine = await queue.heartbeat(sessions, job_id, name, lease_s)
        except Exception as exc:
            log.warning("job %s: could not renew the lease: %s", job_id, exc)
            continue
        if not mine:
            lost.set()
            work.cancel()
            return
