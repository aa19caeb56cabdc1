"""The job queue's rules, on SQLite and PostgreSQL: claiming, leases, retries, waiting."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from jobs_support import Sessions, load, now, sessions_fixture, shift_times  # noqa: F401 - fixture

from junto.enums import JobState
from junto.jobs import queue
from junto.storage.engine import make_engine, make_sessionmaker


async def put(sessions: Sessions, kind: str = "test.queue", **kwargs: object) -> int:
    async with sessions() as db:
        payload = kwargs.pop("payload", {"n": 1})
        job = await queue.enqueue(db, kind, payload, **kwargs)  # type: ignore[arg-type]
        await db.commit()
        return job.id


async def test_a_claimed_job_is_running_under_a_lease_and_not_handed_out_twice(
    sessions: Sessions,
) -> None:
    job_id = await put(sessions)
    job = await queue.claim(sessions, "w1", lease_s=30)
    assert job is not None and job.id == job_id
    assert job.state == JobState.RUNNING and job.worker == "w1" and job.attempts == 1
    assert job.lease_until is not None and job.lease_until > now() + timedelta(seconds=25)
    assert job.started_at is not None
    assert await queue.claim(sessions, "w2", lease_s=30) is None


async def test_claim_takes_the_oldest_ready_job_of_the_wanted_kinds(sessions: Sessions) -> None:
    later = await put(sessions, delay_s=60)
    other_kind = await put(sessions, kind="test.other")
    first = await put(sessions)
    second = await put(sessions)
    claimed = [await queue.claim(sessions, "w", kinds=["test.queue"]) for _ in range(3)]
    assert [j.id if j else None for j in claimed] == [first, second, None]
    assert (await load(sessions, later)).state == JobState.QUEUED
    assert (await load(sessions, other_kind)).state == JobState.QUEUED


async def test_unique_returns_the_active_job_with_the_same_payload(sessions: Sessions) -> None:
    first = await put(sessions, payload={"a": 1, "b": 2}, unique=True)
    same = await put(sessions, payload={"b": 2, "a": 1}, unique=True)
    different = await put(sessions, payload={"a": 2, "b": 2}, unique=True)
    assert same == first and different != first
    job = await queue.claim(sessions, "w")
    assert job is not None and job.id == first
    assert await queue.succeed(sessions, first, "w")
    # A finished job is no longer "the same job": a new one is queued.
    assert await put(sessions, payload={"a": 1, "b": 2}, unique=True) not in (first, different)


async def test_asking_again_for_a_postponed_unique_job_makes_it_due_now(
    sessions: Sessions,
) -> None:
    # A transcript.track job that found its piece still being finalized postponed itself; the
    # finalize, done, asks for the same job: it runs now, not when its postponement ends.
    job_id = await put(sessions, payload={"recording_id": 7}, unique=True)
    job = await queue.claim(sessions, "w")
    assert job is not None and job.id == job_id
    await queue.postpone(sessions, job_id, "w", 30.0, "the piece is still being finalized")
    assert await queue.claim(sessions, "w") is None
    assert await put(sessions, payload={"recording_id": 7}, unique=True) == job_id
    again = await queue.claim(sessions, "w")
    assert again is not None and again.id == job_id and again.attempts == 1


async def test_asking_again_for_a_unique_job_keeps_its_backoff_after_a_failure(
    sessions: Sessions,
) -> None:
    job_id = await put(sessions, unique=True)
    assert await queue.claim(sessions, "w") is not None
    await queue.fail(sessions, job_id, "w", "RuntimeError: flaky")
    assert await put(sessions, unique=True) == job_id
    assert await queue.claim(sessions, "w") is None  # still backing off


async def test_concurrent_claimers_never_get_the_same_job(
    sessions: Sessions, database_url: str
) -> None:
    count = 40
    ids = {await put(sessions, payload={"n": i}) for i in range(count)}
    # Two engines stand for two worker processes; each runs two claimers at once.
    engines = [make_engine(database_url) for _ in range(2)]
    makers = [make_sessionmaker(e) for e in engines]
    claimed: list[tuple[str, int]] = []

    async def claimer(name: str, maker: Sessions) -> None:
        while (job := await queue.claim(maker, name, lease_s=30)) is not None:
            claimed.append((name, job.id))
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(claimer(f"w{i}", makers[i % 2]) for i in range(4)))
    finally:
        for engine in engines:
            await engine.dispose()
    got = [job_id for _, job_id in claimed]
    assert sorted(got) == sorted(ids), "every job claimed exactly once"
    assert len({name for name, _ in claimed}) > 1, "the claimers actually competed"


async def test_a_dead_workers_job_is_taken_over_once_its_lease_expires(
    sessions: Sessions,
) -> None:
    job_id = await put(sessions)
    assert await queue.claim(sessions, "dead", lease_s=30) is not None
    assert await queue.claim(sessions, "alive", lease_s=30) is None  # lease still valid
    await shift_times(sessions, job_id, 31)  # 31 s later, no heartbeat came
    job = await queue.claim(sessions, "alive", lease_s=30)
    assert job is not None and job.id == job_id and job.worker == "alive" and job.attempts == 2
    # The old worker wakes up: nothing it reports changes the job any more.
    assert not await queue.progress(sessions, job_id, "dead", 0.9, "zombie")
    assert not await queue.heartbeat(sessions, job_id, "dead")
    assert not await queue.succeed(sessions, job_id, "dead")
    assert await queue.fail(sessions, job_id, "dead", "boom") is None
    job = await load(sessions, job_id)
    assert job.state == JobState.RUNNING and job.worker == "alive" and job.progress_note == ""
    assert await queue.progress(sessions, job_id, "alive", 0.5, "halfway")
    job = await load(sessions, job_id)
    assert (job.progress, job.progress_note) == (0.5, "halfway")


async def test_a_job_whose_workers_keep_dying_fails_when_attempts_run_out(
    sessions: Sessions,
) -> None:
    job_id = await put(sessions, max_attempts=2)
    for _ in range(2):
        assert await queue.claim(sessions, "crashy", lease_s=30) is not None
        await shift_times(sessions, job_id, 31)
    assert await queue.claim(sessions, "w", lease_s=30) is None
    job = await load(sessions, job_id)
    assert job.state == JobState.FAILED and job.error and "stopped responding" in job.error


async def test_failures_back_off_exponentially_then_fail_with_the_error(
    sessions: Sessions,
) -> None:
    job_id = await put(sessions, max_attempts=3)
    for attempt, wait in [(1, 5), (2, 10)]:
        job = await queue.claim(sessions, "w")
        assert job is not None and job.attempts == attempt
        state = await queue.fail(sessions, job_id, "w", f"RuntimeError: broke #{attempt}")
        assert state == JobState.QUEUED
        job = await load(sessions, job_id)
        assert job.error == f"RuntimeError: broke #{attempt}"
        remaining = (job.run_after - now()).total_seconds()
        assert wait - 2 < remaining <= wait
        assert await queue.claim(sessions, "w") is None  # not due yet
        await shift_times(sessions, job_id, wait)
    assert await queue.claim(sessions, "w") is not None
    assert await queue.fail(sessions, job_id, "w", "RuntimeError: broke #3") == JobState.FAILED
    job = await load(sessions, job_id)
    assert job.state == JobState.FAILED and job.error == "RuntimeError: broke #3"
    assert job.finished_at is not None and job.attempts == 3


def test_backoff_is_capped_at_ten_minutes() -> None:
    assert [queue.backoff_seconds(a) for a in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert queue.backoff_seconds(20) == 600


async def test_a_permanent_failure_does_not_retry(sessions: Sessions) -> None:
    job_id = await put(sessions)
    assert await queue.claim(sessions, "w") is not None
    assert await queue.fail(sessions, job_id, "w", "bad input", permanent=True) == JobState.FAILED
    assert (await load(sessions, job_id)).error == "bad input"


async def test_retry_queues_a_failed_job_again_and_refuses_others(sessions: Sessions) -> None:
    job_id = await put(sessions, max_attempts=1)
    async with sessions() as db:
        with pytest.raises(queue.JobError) as not_failed:
            await queue.retry(db, job_id)
        assert not_failed.value.status == 409 and "only failed jobs" in not_failed.value.message
        with pytest.raises(queue.JobError) as missing:
            await queue.retry(db, 999_999)
        assert missing.value.status == 404
    assert await queue.claim(sessions, "w") is not None
    assert await queue.fail(sessions, job_id, "w", "disk full") == JobState.FAILED
    async with sessions() as db:
        job = await queue.retry(db, job_id)
        await db.commit()
    assert job.state == JobState.QUEUED and job.attempts == 0
    assert job.error == "disk full"  # still shown until it runs again
    again = await queue.claim(sessions, "w")
    assert again is not None and again.id == job_id and again.attempts == 1
    assert again.error is None


async def test_postponing_does_not_count_as_an_attempt(sessions: Sessions) -> None:
    job_id = await put(sessions, max_attempts=2)
    for _ in range(4):  # more waits than attempts
        job = await queue.claim(sessions, "w")
        assert job is not None and job.attempts == 1
        state = await queue.postpone(sessions, job_id, "w", 5, "waiting for recordings")
        assert state == JobState.QUEUED
        job = await load(sessions, job_id)
        assert job.attempts == 0 and job.progress_note == "waiting for recordings"
        assert job.worker is None and 3 < (job.run_after - now()).total_seconds() <= 5
        await shift_times(sessions, job_id, 5)


async def test_a_job_waiting_more_than_six_hours_gives_up(sessions: Sessions) -> None:
    job_id = await put(sessions)
    await shift_times(sessions, job_id, 6 * 3600 + 60)
    assert await queue.claim(sessions, "w") is not None
    state = await queue.postpone(sessions, job_id, "w", 5, "waiting for recordings to finish")
    assert state == JobState.FAILED
    job = await load(sessions, job_id)
    assert job.error == (
        "gave up after waiting more than 6 hours: waiting for recordings to finish"
    )


async def test_release_puts_the_job_back_without_counting_it(sessions: Sessions) -> None:
    job_id = await put(sessions)
    assert await queue.claim(sessions, "w") is not None
    assert await queue.release(sessions, job_id, "w")
    job = await load(sessions, job_id)
    assert job.state == JobState.QUEUED and job.attempts == 0 and job.worker is None


async def test_list_jobs_and_views(sessions: Sessions) -> None:
    a = await put(sessions, payload={"n": 1})
    b = await put(sessions, payload={"n": 2})
    assert await queue.claim(sessions, "w") is not None
    async with sessions() as db:
        everything = await queue.list_jobs(db)
        queued = await queue.list_jobs(db, states=[JobState.QUEUED])
        newest = await queue.list_jobs(db, limit=1)
    assert [j.id for j in everything] == [a, b]
    assert [j.id for j in queued] == [b]
    assert [j.id for j in newest] == [b]
    view = queue.job_view(everything[0])
    assert view["state"] == "running" and view["attempts"] == 1 and view["payload"] == {"n": 1}
    assert set(view) >= {"id", "kind", "progress", "note", "error", "max_attempts",
                         "created_at", "started_at", "finished_at", "conversation_id"}  # fmt: skip
