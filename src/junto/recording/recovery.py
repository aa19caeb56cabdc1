"""Orphaned recording pieces: ones whose recorder died (a crash, a SIGKILL) while recording.

A live piece's recorder refreshes `heartbeat_at` every few seconds. A piece still RECORDING whose
heartbeat is older than `stale_after_s` has nobody writing it: its journal holds everything that
reached the OS before the crash, so it is closed here (ended at its last intact packet) and
handed to `recording.finalize` like any other piece. Any process may do this; the conditional
update lets exactly one of several processes that notice at once claim each piece.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from junto.config import Settings
from junto.enums import RecordingState
from junto.jobs.queue import enqueue
from junto.recording.journal import JournalError, last_wall
from junto.storage.tables import Recording
from junto.storage.types import utcnow

if TYPE_CHECKING:
    from junto.node import Node

log = logging.getLogger("junto.recording")

FINALIZE = "recording.finalize"


async def _ended_at(settings: Settings, row: Recording) -> datetime:
    """When the piece really ended: its journal's last intact packet, else its heartbeat."""
    try:
        wall = await asyncio.to_thread(last_wall, settings.data_dir / row.journal_path)
    except JournalError as exc:
        log.warning("recording %s: %s", row.id, exc)
        wall = None
    if wall is None:
        return row.heartbeat_at
    return max(datetime.fromtimestamp(wall, UTC), row.started_at)


async def recover_orphans(
    node_or_sessionmaker: Node | async_sessionmaker[AsyncSession],
    settings: Settings,
    stale_after_s: float = 15.0,
    *,
    exclude: Collection[int] = (),
) -> int:
    """Close every RECORDING piece whose heartbeat is older than `stale_after_s` (except the
    ids in `exclude`, the caller's own live pieces): ended_at from its journal, state
    FINALIZING, a `recording.finalize` job queued. Returns how many pieces it took over."""
    sessions = (
        node_or_sessionmaker
        if isinstance(node_or_sessionmaker, async_sessionmaker)
        else node_or_sessionmaker.db
    )
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    async with sessions() as db:
        rows = list(
            await db.scalars(
                select(Recording)
                .where(Recording.state == RecordingState.RECORDING, Recording.heartbeat_at < cutoff)
                .order_by(Recording.id)
            )
        )
    recovered = 0
    for row in rows:
        if row.id in exclude:
            continue
        ended_at = await _ended_at(settings, row)
        async with sessions() as db:
            # Conditional: another process may have claimed it, or its recorder came back.
            result = await db.execute(
                update(Recording)
                .where(
                    Recording.id == row.id,
                    Recording.state == RecordingState.RECORDING,
                    Recording.heartbeat_at < cutoff,
                )
                .values(state=RecordingState.FINALIZING, ended_at=ended_at)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await db.rollback()
                continue
            await enqueue(
                db,
                FINALIZE,
                {"recording_id": row.id},
                conversation_id=row.conversation_id,
                unique=True,
            )
            await db.commit()
        recovered += 1
        log.warning(
            "recording %s (user %s, conversation %s) was orphaned (heartbeat %s); finalizing "
            "what its journal holds",
            row.id,
            row.user_id,
            row.conversation_id,
            row.heartbeat_at.isoformat(),
        )
    return recovered
