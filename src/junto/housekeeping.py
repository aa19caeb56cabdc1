"""Housekeeping: the `housekeeping.sweep` job, and the scheduler that queues it.

A sweep deletes what nobody can use any more: expired sessions, used or expired password-reset
tokens, guests gone quiet for `guest_idle_days` who left nothing behind, the folders of deleted
conversations and snippets in the data dir, full shared rate buckets, and old sweeps' own job
rows. Each part is one short transaction of conditional deletes, so a sweep is idempotent and
two sweeps at once (two workers, two machines) only find less to do.

Guests who wrote something (chat, backchannel, a reaction, a recording, a caption, a consent,
an invite, a snippet, a room event: any row that names them and must outlive them) are kept as
they are: their name is how those rows are shown, and a guest account cannot be signed in to
again once its session has expired, so keeping it exposes nothing. Anonymising it instead would
rewrite who said what in published conversations.

Every node process runs `keep_scheduled`: every `housekeeping_minutes` it queues the next sweep
unless one is queued or running already, under a lock (PostgreSQL's advisory lock, SQLite's
write lock), so several processes never pile up copies. The first check comes one interval
after the process starts, so a node that has just started (or a test) has no sweep queued.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import zlib
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, Delete, and_, delete, exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from junto.config import Settings
from junto.enums import JobState
from junto.jobs.context import JobContext
from junto.jobs.queue import ACTIVE_STATES, enqueue
from junto.ratelimit import forget_full_buckets, longest_refill
from junto.storage.tables import (
    Base,
    Conversation,
    Job,
    MediaConsent,
    Participant,
    PasswordReset,
    Reaction,
    Session,
    Snippet,
    User,
)
from junto.storage.types import utcnow

log = logging.getLogger("junto.housekeeping")

SWEEP = "housekeeping.sweep"
GUEST_BATCH = 500
# Finished sweeps are kept this long for `junto jobs`, then swept themselves.
SWEEP_ROWS_KEPT = timedelta(days=1)
# Rows that go with a guest (ON DELETE CASCADE) but must not be lost with one: a reaction
# counts on a published post, a consent is the record of what a speaker agreed to.
_CASCADING_BUT_KEPT = (Reaction.__table__, MediaConsent.__table__)
_SNIPPET_FOLDER = re.compile(r"[A-Za-z0-9]{1,16}")

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class SweepCounts:
    sessions: int = 0
    reset_tokens: int = 0
    guests: int = 0
    guests_kept: int = 0  # quiet guests kept because rows that must stay name them
    conversation_folders: int = 0
    snippet_folders: int = 0
    rate_buckets: int = 0
    sweep_jobs: int = 0

    def summary(self) -> str:
        parts = (f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self))
        return ", ".join(parts)


# ---- the sweep --------------------------------------------------------------------------------


async def sweep(sessions: Sessions, settings: Settings, now: datetime | None = None) -> SweepCounts:
    """Delete everything expired or orphaned (see the module's docstring); returns the counts.

    Each delete is one statement in a transaction of its own, so SQLite takes its write lock
    first thing (waiting its turn) and nothing is held for long."""
    now = now or utcnow()
    counts = SweepCounts()
    cutoff = now - timedelta(days=settings.guest_idle_days)
    counts.guests, counts.guests_kept = await _stale_guests(sessions, cutoff)
    spent = or_(PasswordReset.used_at.is_not(None), PasswordReset.expires_at <= now)
    counts.sessions = await _deleted(sessions, delete(Session).where(Session.expires_at <= now))
    counts.reset_tokens = await _deleted(sessions, delete(PasswordReset).where(spent))
    async with sessions() as db:
        counts.rate_buckets = await forget_full_buckets(db, longest_refill(settings.limits))
        await db.commit()
    counts.sweep_jobs = await _deleted(sessions, _old_sweeps(now))
    async with sessions() as db:
        counts.conversation_folders = await _orphan_conversation_folders(db, settings.data_dir)
        counts.snippet_folders = await _orphan_snippet_folders(db, settings.data_dir)
    return counts


async def run(ctx: JobContext) -> None:
    """The `housekeeping.sweep` job."""
    counts = await sweep(ctx.db, ctx.settings)
    log.info("housekeeping: removed %s", counts.summary())
    await ctx.progress(1.0, f"removed {counts.summary()}")


async def _deleted(sessions: Sessions, statement: Delete) -> int:
    async with sessions() as db:
        result = await db.execute(statement)
        await db.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def _old_sweeps(now: datetime) -> Delete:
    return delete(Job).where(
        Job.kind == SWEEP,
        Job.state.in_((JobState.SUCCEEDED, JobState.FAILED)),
        Job.finished_at < now - SWEEP_ROWS_KEPT,
    )


def _quiet_guest(cutoff: datetime) -> ColumnElement[bool]:
    """A guest with no sign of life since `cutoff`: created before it, no session lasting
    past it (a guest cannot sign in again, so its sessions bound when it could act), no
    standing in a conversation changed after it."""
    return and_(
        User.is_guest.is_(True),
        User.created_at < cutoff,
        ~exists().where(Session.user_id == User.id, Session.expires_at >= cutoff),
        ~exists().where(Participant.user_id == User.id, Participant.updated_at >= cutoff),
    )


def _named_in_kept_rows() -> ColumnElement[bool]:
    """Some row that must outlive the person names them: every column referring to users.id
    without ON DELETE CASCADE (a new table's is covered without a change here), and the
    cascading rows in _CASCADING_BUT_KEPT."""
    users_id = User.__table__.c.id
    named = []
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            cascades = (fk.ondelete or "").upper() == "CASCADE"
            if fk.column is users_id and (not cascades or table in _CASCADING_BUT_KEPT):
                named.append(exists().where(fk.parent == User.id))
    return or_(*named)


async def _stale_guests(sessions: Sessions, cutoff: datetime) -> tuple[int, int]:
    """Delete quiet guests named in no kept row (their sessions and standing go with them by
    ON DELETE CASCADE), a batch per statement; returns (deleted, quiet guests kept)."""
    gone = and_(_quiet_guest(cutoff), ~_named_in_kept_rows())
    deleted = 0
    while True:
        # One statement: the conditions are checked as the rows are deleted, so a guest that
        # acted meanwhile stays.
        batch = select(User.id).where(gone).limit(GUEST_BATCH).scalar_subquery()
        removed = await _deleted(sessions, delete(User).where(User.id.in_(batch)))
        deleted += removed
        if removed < GUEST_BATCH:
            break
    async with sessions() as db:
        kept = await db.scalar(
            select(func.count())
            .select_from(User)
            .where(_quiet_guest(cutoff), _named_in_kept_rows())
        )
    return deleted, int(kept or 0)


# ---- files of deleted conversations and snippets ------------------------------------------------


def _folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]


async def _remove(folder: Path) -> None:
    await asyncio.to_thread(shutil.rmtree, folder, True)
    log.info("housekeeping: removed %s (its row is gone)", folder)


async def _orphan_conversation_folders(db: AsyncSession, data_dir: Path) -> int:
    """`recordings/<id>/` (journals, WebM pieces, the composite, audio, thumbnail, WebVTT) of
    conversations whose row is gone. Nothing is written there before the conversation's row
    exists, so a folder without its row is garbage; each is checked again just before it
    goes."""
    found = await asyncio.to_thread(_folders, data_dir / "recordings")
    folders = {int(p.name): p for p in found if p.name.isdigit()}
    removed = 0
    for conversation_id, folder in sorted(folders.items()):
        found = await db.scalar(select(Conversation.id).where(Conversation.id == conversation_id))
        if found is None:
            await _remove(folder)
            removed += 1
    await db.rollback()  # end the read transaction: nothing was written
    return removed


async def _orphan_snippet_folders(db: AsyncSession, data_dir: Path) -> int:
    """`snippets/<slug>/` whose snippet is gone (its conversation was deleted, taking the row
    by ON DELETE CASCADE, or a delete stopped before its files). A snippet's row is committed
    before its files are cut, so a folder without its row is garbage."""
    folders = await asyncio.to_thread(_folders, data_dir / "snippets")
    removed = 0
    for folder in sorted(folders):
        if not _SNIPPET_FOLDER.fullmatch(folder.name):
            continue  # not a snippet's: not ours to remove
        if await db.scalar(select(Snippet.id).where(Snippet.slug == folder.name)) is None:
            await _remove(folder)
            removed += 1
    await db.rollback()
    return removed


# ---- the scheduler ----------------------------------------------------------------------------

# pg_advisory_xact_lock takes a 64-bit key: a fixed one for "queueing the next sweep".
_LOCK_KEY = zlib.crc32(SWEEP.encode())


async def _lock_scheduling(db: AsyncSession) -> None:
    """Serialise "is a sweep queued? if not, queue one" across processes, for this transaction."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    else:
        await db.execute(text("BEGIN IMMEDIATE"))  # SQLite's write lock, up to busy_timeout


async def schedule(sessions: Sessions, every: timedelta) -> bool:
    """Queue the next sweep, due `every` after the last one was queued, unless one is queued or
    running; True if this call queued it."""
    async with sessions() as db:
        await _lock_scheduling(db)
        active = Job.kind == SWEEP, Job.state.in_(ACTIVE_STATES)
        if await db.scalar(select(Job.id).where(*active).limit(1)) is not None:
            await db.rollback()
            return False
        last = await db.scalar(select(func.max(Job.created_at)).where(Job.kind == SWEEP))
        now = utcnow()
        delay = 0.0 if last is None else max((last + every - now).total_seconds(), 0.0)
        await enqueue(db, SWEEP, {}, delay_s=delay, max_attempts=3)
        await db.commit()
        return True


async def keep_scheduled(sessions: Sessions, every: timedelta) -> None:
    """Every `every`, make sure the next sweep is queued (runs until cancelled)."""
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            await schedule(sessions, every)
        except Exception as exc:  # the database is away: try again next time
            log.warning("housekeeping: could not queue the next sweep: %s", exc)
