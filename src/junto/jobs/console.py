"""`junto jobs`: the job queue as a table in a terminal, and retrying failed jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.config import Settings
from junto.enums import JobState
from junto.jobs import queue
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import Conversation, Job
from junto.storage.types import utcnow

BAR_WIDTH = 20
# Without --all: what still matters (queued, running, failed) and what finished lately.
RECENT = timedelta(hours=1)
CLEAR_SCREEN = "\x1b[H\x1b[2J"
WATCH_INTERVAL_S = 1.0
_COLUMNS = (("ID", 6), ("KIND", 18), ("CONVERSATION", 12), ("STATE", 9),
            ("PROGRESS", 50), ("TRIES", 5))  # fmt: skip


class ConsoleError(Exception):
    """Something the person asked for does not exist or cannot be done."""


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """`[########------------]  42%`."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * width + 1e-9)
    return f"[{'#' * filled}{'-' * (width - filled)}] {round(fraction * 100):3d}%"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def header() -> str:
    return "  ".join(name.ljust(width) for name, width in _COLUMNS) + "  ERROR"


def row(view: dict[str, Any], slug: str) -> str:
    """One job as one line of the table."""
    shown = f"{progress_bar(view['progress'])}  {view['note']}".rstrip()
    cells = [
        str(view["id"]),
        view["kind"],
        slug or "-",
        view["state"],
        shown,
        f"{view['attempts']}/{view['max_attempts']}",
    ]
    line = "  ".join(_fit(c, w).ljust(w) for c, (_, w) in zip(cells, _COLUMNS, strict=True))
    error = _first_line(view["error"])
    return f"{line}  {_fit(error, 100)}".rstrip()


async def _conversation_id(db: AsyncSession, slug: str | None) -> int | None:
    if slug is None:
        return None
    found = await db.scalar(select(Conversation.id).where(Conversation.slug == slug))
    if found is None:
        raise ConsoleError(f"no conversation {slug!r}")
    return int(found)


async def _slugs(db: AsyncSession, jobs: Sequence[Job]) -> dict[int, str]:
    ids = {j.conversation_id for j in jobs if j.conversation_id is not None}
    if not ids:
        return {}
    found = await db.execute(
        select(Conversation.id, Conversation.slug).where(Conversation.id.in_(ids))
    )
    return {int(cid): str(slug) for cid, slug in found.all()}


def _wanted(job: Job, show_all: bool) -> bool:
    if show_all or job.state in (JobState.QUEUED, JobState.RUNNING, JobState.FAILED):
        return True
    return job.finished_at is not None and utcnow() - job.finished_at < RECENT


async def snapshot(
    sessions: queue.Sessions,
    conversation_id: int | None,
    show_all: bool,
    keep: Collection[int] = (),
) -> list[tuple[int, str, bool]]:
    """The table's rows now: (job id, line, still active). Jobs in `keep` (already shown)
    stay whatever their state, so a watched job is seen finishing."""
    async with sessions() as db:
        jobs = [
            j
            for j in await queue.list_jobs(db, conversation_id)
            if j.id in keep or _wanted(j, show_all)
        ]
        slugs = await _slugs(db, jobs)
    return [
        (
            j.id,
            row(queue.job_view(j), slugs.get(j.conversation_id or 0, "")),
            j.state in queue.ACTIVE_STATES,
        )
        for j in jobs
    ]


async def show_jobs(
    settings: Settings,
    out: TextIO,
    *,
    conversation: str | None = None,
    show_all: bool = False,
    watch: bool = False,
) -> int:
    """Print the jobs table; with `watch`, keep it current until nothing is queued or running.

    On a terminal the table is redrawn in place; otherwise only lines that changed are printed
    again, so a log of the output reads as a history.
    """
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as db:
            conversation_id = await _conversation_id(db, conversation)
        rows = await snapshot(sessions, conversation_id, show_all)
        redraw = watch and out.isatty()
        printed: dict[int, str] = {}
        _draw(out, rows, printed, redraw, first=True)
        while watch and any(active for _, _, active in rows):
            await asyncio.sleep(WATCH_INTERVAL_S)
            rows = await snapshot(sessions, conversation_id, show_all, keep=printed.keys())
            _draw(out, rows, printed, redraw, first=False)
    finally:
        await engine.dispose()
    return 0


def _draw(
    out: TextIO,
    rows: list[tuple[int, str, bool]],
    printed: dict[int, str],
    redraw: bool,
    *,
    first: bool,
) -> None:
    if redraw:
        out.write(CLEAR_SCREEN)
    if redraw or first:
        out.write(header() + "\n")
        if not rows:
            out.write("no jobs\n")
    for job_id, line, _ in rows:
        if redraw or printed.get(job_id) != line:
            out.write(line + "\n")
            printed[job_id] = line
    out.flush()


async def retry_job(settings: Settings, job_id: int) -> str:
    """Queue a failed job again; returns a line to print. Raises queue.JobError."""
    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            job = await queue.retry(db, job_id)
            await db.commit()
            return f"job {job.id} ({job.kind}) is queued again"
    finally:
        await engine.dispose()
