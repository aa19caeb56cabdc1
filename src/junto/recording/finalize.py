"""The `recording.finalize` job: a closed (or orphaned) piece's journal becomes its WebM file.

Idempotent and retry-safe: the journal is deleted only after the row saying READY is committed,
so a failure anywhere before leaves everything needed for the next attempt; a piece that is
already READY succeeds at once. A journal that cannot be read at all fails for good (a retry
would not help); one that holds no packet leaves the piece FAILED ("nothing was recorded").
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import JobState, RecordingState
from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.jobs.queue import enqueue, wake
from junto.recording.journal import JournalError
from junto.recording.webm import NothingRecorded, journal_to_webm
from junto.storage.tables import Job, Recording

log = logging.getLogger("junto.recording")

TRANSCRIBE = "transcript.track"
BUILD = "transcript.build"
FINALIZE_KIND = "recording.finalize"


def webm_relpath(conversation_id: int, recording_id: int) -> str:
    return f"recordings/{conversation_id}/{recording_id}.webm"


async def _mark_failed(ctx: JobContext, recording_id: int, message: str) -> None:
    async with ctx.db() as db:
        await db.execute(
            update(Recording)
            .where(Recording.id == recording_id)
            .values(state=RecordingState.FAILED, error=message)
        )
        conversation_id = await db.scalar(
            select(Recording.conversation_id).where(Recording.id == recording_id)
        )
        if conversation_id is not None:
            await _wake_build_if_last(db, conversation_id, ctx.job_id)
        await db.commit()


async def _wake_build_if_last(db: AsyncSession, conversation_id: int, this_job: int) -> None:
    """No finalize or track of the conversation is left: its transcript build, which postponed
    itself while pieces were being finalized (WAIT_FOR_PIECES_S), runs now. A piece with audio
    never gets here first: its track, just queued, wakes the build when it is done."""
    pending = await db.scalar(
        select(Job.id)
        .where(
            Job.kind.in_([FINALIZE_KIND, TRANSCRIBE]),
            Job.conversation_id == conversation_id,
            Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
            Job.id != this_job,
        )
        .limit(1)
    )
    if pending is None:
        await wake(db, BUILD, conversation_id)


async def run(ctx: JobContext) -> None:
    """Remux the piece's journal into WebM, mark it READY, queue its transcription."""
    try:
        recording_id = int(ctx.payload["recording_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise JobFailed(f"expected a payload with a recording_id, got {ctx.payload!r}") from exc
    async with ctx.db() as db:
        row = await db.get(Recording, recording_id)
    if row is None:
        # Its conversation was deleted (the rows cascade): there is nothing left to finalize.
        log.info("recording %s no longer exists; nothing to finalize", recording_id)
        return
    if row.state == RecordingState.READY:
        return
    if row.state == RecordingState.RECORDING:
        raise NotReady(5.0, "the piece is still being recorded")
    data_dir = ctx.settings.data_dir
    journal = data_dir / row.journal_path
    relpath = webm_relpath(row.conversation_id, row.id)
    if not journal.exists():
        if row.bytes == 0:
            # The process died between creating the row and its first heartbeat: at most a
            # moment of media, never written. Not something an operator needs to chase.
            await _mark_failed(ctx, recording_id, "nothing was recorded")
            return
        message = f"the recording's journal {journal} is missing"
        await _mark_failed(ctx, recording_id, message)
        raise JobFailed(message)
    await ctx.progress(0.0, "remuxing the recording")

    def report(fraction: float) -> None:
        ctx.progress_from_thread(fraction * 0.95, "remuxing the recording")

    try:
        info = await asyncio.to_thread(journal_to_webm, journal, data_dir / relpath, report)
    except JournalError as exc:
        message = f"the recording's journal cannot be read: {exc}"
        await _mark_failed(ctx, recording_id, message)
        raise JobFailed(message) from exc
    except NothingRecorded:
        await _mark_failed(ctx, recording_id, "nothing was recorded")
        await asyncio.to_thread(_remove, journal)
        return
    async with ctx.db() as db:
        await db.execute(
            update(Recording)
            .where(Recording.id == recording_id)
            .values(
                state=RecordingState.READY,
                path=relpath,
                duration_s=info.duration_s,
                has_audio=info.has_audio,
                has_video=info.has_video,
                bytes=info.bytes,
                # t = 0 of the file: the first packet it holds (the aligning point).
                started_at=info.started_at,
                ended_at=row.ended_at or info.started_at + timedelta(seconds=info.duration_s),
                error=None,
            )
        )
        if info.has_audio:
            await enqueue(
                db,
                TRANSCRIBE,
                {"recording_id": recording_id},
                conversation_id=row.conversation_id,
                unique=True,
            )
        else:
            await _wake_build_if_last(db, row.conversation_id, ctx.job_id)
        await db.commit()
    await asyncio.to_thread(_remove, journal)
    await ctx.progress(1.0, f"{info.duration_s:.1f} s recorded")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
