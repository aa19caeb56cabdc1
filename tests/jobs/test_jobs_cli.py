"""`junto jobs` and `junto worker` as an operator runs them: real processes on a SQLite data dir."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import psutil
import pytest
from compositing_support import Speech, seed
from jobs_support import Sessions, load
from sqlalchemy import update

from junto.cli import main
from junto.config import Settings
from junto.enums import JobState
from junto.jobs import queue
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade
from junto.storage.tables import Conversation, Job
from junto.storage.types import utcnow

JUNTO = [sys.executable, "-m", "junto"]

T = TypeVar("T")


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}


def junto(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JUNTO, *args], capture_output=True, text=True, env=env(), timeout=60, check=False
    )


def in_db(settings: Settings, action: Callable[[Sessions], Awaitable[T]]) -> T:
    """Run `action(sessions)` (a coroutine function) against the data dir's database."""

    async def go() -> T:
        engine = make_engine(settings.effective_database_url)
        try:
            return await action(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.fixture(name="data")
def data_fixture(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", secret_key="test", workers=0)
    settings.data_dir.mkdir()
    upgrade(settings.effective_database_url)
    return settings


async def two_jobs(sessions: Sessions) -> tuple[str, int, int]:
    """A conversation with a running transcription at 42 % and a failed render."""
    async with sessions() as db:
        conv = Conversation(slug="talk42", title="T", created_by=1)
        from junto.storage.tables import User

        db.add(User(display_name="Host", colour="#000000"))
        await db.flush()
        db.add(conv)
        await db.flush()
        running = await queue.enqueue(db, "transcript.build", {"conversation_id": conv.id},
                                      conversation_id=conv.id)  # fmt: skip
        failed = await queue.enqueue(db, "composite.render", {"conversation_id": conv.id},
                                     conversation_id=conv.id)  # fmt: skip
        await db.execute(
            update(Job)
            .where(Job.id == running.id)
            .values(
                state=JobState.RUNNING, progress=0.42, progress_note="transcribing Ana", attempts=1
            )
        )
        await db.execute(update(Job).where(Job.id == failed.id).values(
            state=JobState.FAILED, error="ffmpeg failed (exit status 1):\nsecond line",
            attempts=5))  # fmt: skip
        await db.commit()
        return conv.slug, running.id, failed.id


def test_jobs_table_shows_progress_bars_and_retry_works(
    data: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    slug, _, failed = in_db(data, two_jobs)
    where = ["--data-dir", str(data.data_dir)]

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("jobs", *where)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "CONVERSATION", "STATE", "PROGRESS", "TRIES", "ERROR"]
    build = next(line for line in lines if "transcript.build" in line)
    assert "[########------------]  42%  transcribing Ana" in build
    assert slug in build and "running" in build and "1/5" in build
    render = next(line for line in lines if "composite.render" in line)
    assert "failed" in render and "ffmpeg failed (exit status 1):" in render
    assert "second line" not in out

    code, _, err = run("jobs", *where, "--conversation", "nope")
    assert code == 1 and "no conversation 'nope'" in err

    code, out, _ = run("jobs", "retry", str(failed), *where)
    assert code == 0 and f"job {failed} (composite.render) is queued again" in out
    code, _, err = run("jobs", *where, "retry", str(failed))
    assert code == 1 and "only failed jobs can be retried" in err
    code, _, err = run("jobs", *where, "retry", "9999")
    assert code == 1 and "no job 9999" in err


def test_jobs_watch_prints_changes_until_nothing_runs(data: Settings) -> None:
    _, running, _ = in_db(data, two_jobs)
    watch = subprocess.Popen(
        [*JUNTO, "jobs", "--watch", "--data-dir", str(data.data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    try:

        async def advance(sessions: Sessions, **values: object) -> None:
            async with sessions() as db:
                await db.execute(update(Job).where(Job.id == running).values(**values))
                await db.commit()

        assert watch.stdout is not None
        stdout = watch.stdout

        def read_until(needle: str) -> list[str]:
            """The watcher's lines up to the first that holds `needle` (it prints as it sees
            changes, so each step waits for the watcher, however slowly it started)."""
            lines: list[str] = []
            while not lines or needle not in lines[-1]:
                line = stdout.readline()
                assert line, f"the watcher ended before printing {needle!r}: {lines}"
                lines.append(line)
            return lines

        seen = read_until("transcript.build")
        in_db(data, lambda s: advance(s, progress=0.8, progress_note="almost"))
        seen += read_until("almost")
        in_db(data, lambda s: advance(s, progress=1.0, state=JobState.SUCCEEDED,
                                      finished_at=utcnow() - timedelta(days=1)))  # fmt: skip
        rest, err = watch.communicate(timeout=15)
        out = "".join(seen) + rest
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, err
    assert out.count("PROGRESS") == 1  # not a terminal: no redraws, only changed lines
    assert "\x1b" not in out
    progress = [line for line in out.splitlines() if "transcript.build" in line]
    assert len(progress) == 3, out
    assert " 42%" in progress[0] and " 80%  almost" in progress[1] and "100%" in progress[2]
    assert sum("composite.render" in line for line in out.splitlines()) == 1


# ---- real worker processes ----------------------------------------------------------------------


@pytest.fixture(name="workers")
def workers_fixture() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_worker(
    settings: Settings, name: str, procs: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    log = open(settings.data_dir / f"{name}.log", "wb")
    proc = subprocess.Popen(
        [*JUNTO, "worker", "--name", name, "--lease-seconds", "2",
         "--data-dir", str(settings.data_dir)],
        env=env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    procs.append(proc)
    return proc


def wait_for(
    settings: Settings, job_id: int, check: Callable[[Job], bool], timeout: float = 60
) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = in_db(settings, lambda s: load(s, job_id))
        if check(job):
            return job
        assert time.monotonic() < deadline, f"gave up waiting; job is {queue.job_view(job)}"
        time.sleep(0.1)


def test_a_killed_workers_render_is_finished_by_another_worker(
    data: Settings, workers: list[subprocess.Popen[bytes]]
) -> None:
    async def prepare(sessions: Sessions) -> tuple[int, int]:
        cid = await seed(sessions, data, [Speech("Ana", 0, 24, 440), Speech("Bob", 2, 22, 660)])
        async with sessions() as db:
            job = await queue.enqueue(db, "composite.render", {"conversation_id": cid},
                                      conversation_id=cid)  # fmt: skip
            await db.commit()
            return cid, job.id

    cid, job_id = in_db(data, prepare)
    first = start_worker(data, "first", workers)
    wait_for(data, job_id, lambda j: j.worker == "first" and j.progress > 0.05)
    encoders = psutil.Process(first.pid).children(recursive=True)
    assert encoders, "ffmpeg runs as the worker's child"
    first.send_signal(signal.SIGKILL)
    first.wait()
    # The kernel takes ffmpeg down with its worker: no orphan keeps encoding.
    _, alive = psutil.wait_procs(encoders, timeout=5)
    assert not alive

    second = start_worker(data, "second", workers)
    job = wait_for(data, job_id, lambda j: j.state == JobState.SUCCEEDED)
    assert job.worker == "second" and job.attempts == 2
    assert (data.data_dir / "recordings" / str(cid) / "composite.mp4").stat().st_size > 0

    # SIGTERM in the middle of a job: the worker puts it back and exits cleanly.
    async def again(sessions: Sessions) -> int:
        async with sessions() as db:
            job = await queue.enqueue(db, "composite.render", {"conversation_id": cid},
                                      conversation_id=cid)  # fmt: skip
            await db.commit()
            return job.id

    second_job = in_db(data, again)
    wait_for(data, second_job, lambda j: j.worker == "second" and j.progress > 0.05)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=15) == 0
    job = wait_for(data, second_job, lambda j: True)
    assert job.state == JobState.QUEUED and job.attempts == 0 and job.worker is None
    log = (data.data_dir / "second.log").read_text()
    assert f"job {job_id} composite.render succeeded" in log
    assert f"job {second_job} composite.render interrupted" in log


def test_jobs_watch_on_a_terminal_redraws_in_place(data: Settings) -> None:
    in_db(data, two_jobs)

    async def finish_all(sessions: Sessions) -> None:
        async with sessions() as db:
            done = {"state": JobState.SUCCEEDED, "progress": 1.0, "error": None}
            await db.execute(update(Job).values(finished_at=utcnow(), **done))
            await db.commit()

    in_db(data, finish_all)
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [*JUNTO, "jobs", "--watch", "--data-dir", str(data.data_dir)],
        stdout=follower, stderr=subprocess.PIPE, env=env(),
    )  # fmt: skip
    os.close(follower)
    assert proc.wait(timeout=30) == 0
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    text = out.decode()
    assert text.startswith("\x1b[H\x1b[2J") and "[####################] 100%" in text
