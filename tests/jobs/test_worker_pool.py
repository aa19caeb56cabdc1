"""The node's own worker processes: started with the node's settings, restarted, stopped."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psutil
from compositing_support import seed
from jobs_support import load, succeeded

from helpers import eventually
from junto.config import Settings
from junto.jobs import queue
from junto.jobs.supervisor import WorkerPool
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade


async def test_pool_runs_jobs_restarts_dead_workers_and_stops(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key="pool-test", workers=2)
    settings.data_dir.mkdir()
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    pool = WorkerPool(settings)
    await pool.start()
    try:
        # The workers find the node's database through the environment the pool gives them.
        cid = await seed(sessions, settings, [])
        async with sessions() as db:
            job = await queue.enqueue(db, "composite.render", {"conversation_id": cid})
            await db.commit()
        await eventually(
            lambda: succeeded(sessions, job.id), 30, what="the pool's workers to run the job"
        )
        assert (await load(sessions, job.id)).worker in {pool.name(0), pool.name(1)}
        first = pool.pids
        assert len(first) == 2

        os.kill(first[0], signal.SIGKILL)
        await eventually(
            lambda: len(pool.pids) == 2 and first[0] not in pool.pids,
            30,
            what="the killed worker to be restarted",
        )
        running = [psutil.Process(pid) for pid in pool.pids]
    finally:
        await pool.stop()
        await engine.dispose()
    assert pool.pids == []
    _, alive = psutil.wait_procs(running, timeout=1)
    assert not alive
