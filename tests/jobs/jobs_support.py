"""Fixtures for the job tests: a migrated database (SQLite or PostgreSQL) and its sessions.

Imported by the test modules of this folder (no conftest.py here: the root one is imported by
name as `conftest`, and a second module of that name would shadow it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from junto.enums import JobState
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade
from junto.storage.tables import Job
from junto.storage.types import utcnow

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(name="sessions")
async def sessions_fixture(database_url: str) -> AsyncIterator[Sessions]:
    """Sessions on a freshly migrated database (each test runs on SQLite and PostgreSQL)."""
    await asyncio.to_thread(upgrade, database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def load(sessions: Sessions, job_id: int) -> Job:
    async with sessions() as db:
        job = await db.get(Job, job_id)
        assert job is not None
        return job


async def succeeded(sessions: Sessions, job_id: int) -> bool:
    return bool((await load(sessions, job_id)).state == JobState.SUCCEEDED)


async def shift_times(sessions: Sessions, job_id: int, seconds: float) -> None:
    """Move a job's clock-related times `seconds` into the past, as if that much time passed."""
    job = await load(sessions, job_id)
    delta = timedelta(seconds=seconds)

    def back(when: datetime | None) -> datetime | None:
        return when - delta if when is not None else None

    async with sessions() as db:
        await db.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                run_after=back(job.run_after),
                lease_until=back(job.lease_until),
                created_at=back(job.created_at),
            )
        )
        await db.commit()


def now() -> datetime:
    return utcnow()
