"""Jobs run in the order people wait for them, on SQLite and PostgreSQL: the transcript first,
then knowledge and search, then the composite video, whatever order they were queued in."""

from __future__ import annotations

import asyncio
import os

import pytest
from jobs_support import Sessions, load, sessions_fixture, shift_times  # noqa: F401 - fixture

from junto.config import auto_workers, load_settings
from junto.enums import JobState
from junto.jobs import queue
from junto.storage.engine import make_engine, make_sessionmaker


async def put(sessions: Sessions, kind: str, n: int = 1, **kwargs: object) -> int:
    async with sessions() as db:
        job = await queue.enqueue(db, kind, {"n": n}, **kwargs)  # type: ignore[arg-type]
        await db.commit()
        return job.id


async def claim_all(sessions: Sessions, worker: str = "w") -> list[str]:
    kinds = []
    while (job := await queue.claim(sessions, worker, lease_s=30)) is not None:
        kinds.append(job.kind)
    return kinds


async def test_the_transcript_is_claimed_before_a_video_queued_earlier(sessions: Sessions) -> None:
    # What ending a conversation queues, in the order it happens: the video and the build at
    # the end, the tracks as the pieces are finalized, knowledge and search after the build.
    await put(sessions, "composite.render")
    await put(sessions, "test.unknown_kind")  # a kind nobody ranked runs with the video
    await put(sessions, "search.index")
    await put(sessions, "knowledge.extract")
    await put(sessions, "transcript.build")
    await put(sessions, "recording.finalize")
    await put(sessions, "transcript.track", 1)
    await put(sessions, "transcript.track", 2)
    assert await claim_all(sessions) == [
        "transcript.build",
        "recording.finalize",
        "transcript.track",
        "transcript.track",
        "search.index",
        "knowledge.extract",
        "composite.render",
        "test.unknown_kind",
    ]


async def test_a_running_video_is_not_preempted_but_the_next_claim_takes_the_transcript(
    sessions: Sessions,
) -> None:
    video = await put(sessions, "composite.render")
    first = await queue.claim(sessions, "w1", lease_s=30)
    assert first is not None and first.id == video
    later_video = await put(sessions, "composite.render", 2)
    track = await put(sessions, "transcript.track")
    second = await queue.claim(sessions, "w2", lease_s=30)
    assert second is not None and second.id == track
    running = await load(sessions, video)
    assert running.state == JobState.RUNNING and running.worker == "w1"
    assert await queue.heartbeat(sessions, video, "w1")  # still w1's, untouched
    third = await queue.claim(sessions, "w2", lease_s=30)
    assert third is not None and third.id == later_video


async def test_priorities_hold_for_retries_expired_leases_and_delays(sessions: Sessions) -> None:
    video = await put(sessions, "composite.render")
    lost = await queue.claim(sessions, "dead", lease_s=30)
    assert lost is not None and lost.id == video
    await shift_times(sessions, video, 60)  # its worker died: the lease ran out
    track = await put(sessions, "transcript.track")
    waiting = await put(sessions, "transcript.build", delay_s=60)
    claimed = await queue.claim(sessions, "w", lease_s=30)
    assert claimed is not None and claimed.id == track  # before the dead worker's video
    claimed = await queue.claim(sessions, "w", lease_s=30)
    assert claimed is not None and claimed.id == video  # the build is not due yet
    assert (await load(sessions, waiting)).state == JobState.QUEUED


async def test_concurrent_claimers_take_every_job_once_most_urgent_first(
    sessions: Sessions, database_url: str
) -> None:
    videos = {await put(sessions, "composite.render", i) for i in range(10)}
    tracks = {await put(sessions, "transcript.track", i) for i in range(10)}
    engines = [make_engine(database_url) for _ in range(2)]
    makers = [make_sessionmaker(e) for e in engines]
    claimed: list[int] = []

    async def claimer(name: str, maker: Sessions) -> None:
        while (job := await queue.claim(maker, name, lease_s=30)) is not None:
            claimed.append(job.id)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(claimer(f"w{i}", makers[i % 2]) for i in range(4)))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(claimed) == sorted(videos | tracks), "every job claimed exactly once"
    # Mostly tracks first: a claimer passes over rows the others hold locked (PostgreSQL) or
    # just took (SQLite), so only the last few tracks can be overtaken.
    assert len(set(claimed[:10]) & tracks) >= 6, claimed


def test_a_second_worker_only_where_the_cores_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [auto_workers(n) for n in (1, 2, 3, 4, 16)] == [1, 1, 1, 2, 2]
    assert auto_workers(None) == (2 if (os.cpu_count() or 1) >= 4 else 1)
    for given, expected in (("auto", auto_workers()), ("", auto_workers()), ("3", 3), ("0", 0)):
        monkeypatch.setenv("JUNTO_WORKERS", given)
        assert load_settings().workers == expected
    monkeypatch.delenv("JUNTO_WORKERS")
    assert load_settings().workers == auto_workers()
