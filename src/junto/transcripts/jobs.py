"""The worker jobs that make the final transcript.

`transcript.track` {"recording_id"}: one finished recording piece → its words with timings
(TrackTranscript), with the transcript model and beam from the settings.
`transcript.build` {"conversation_id"}: once the conversation has ended and every piece with
audio is transcribed, merge all speakers' words into segments in time order (Transcript +
TranscriptSegment) and write `recordings/<conversation id>/transcript.vtt`.

Both are idempotent (running one again replaces what it wrote), except that a transcript a host
has already corrected is never overwritten by a rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto import processing
from junto.enums import ConversationState, JobState, RecordingState
from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.jobs.queue import enqueue, wake
from junto.speech.models import unsupported_language
from junto.speech.offline import Word, transcribe_file
from junto.speech.vocabulary import conversation_names
from junto.storage.tables import (
    Conversation,
    Job,
    Recording,
    TrackTranscript,
    Transcript,
    TranscriptSegment,
    User,
)
from junto.storage.types import utcnow
from junto.transcripts import ahead, merge, names, store, vtt

TRACK_KIND = "transcript.track"
BUILD_KIND = "transcript.build"
# How long to wait before looking again at what a job waits for.
WAIT_FOR_END_S = 30.0
WAIT_FOR_PIECES_S = 5.0
WAIT_FOR_TRACKS_S = 5.0


def _payload_id(ctx: JobContext, key: str) -> int:
    value = ctx.payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise JobFailed(f"expected an integer {key} in the job's payload, got {value!r}")
    return value


# ---- transcript.track -------------------------------------------------------------------------


async def transcribe_track(ctx: JobContext) -> None:
    """Handler of `transcript.track`: one READY recording piece → its TrackTranscript."""
    recording_id = _payload_id(ctx, "recording_id")
    async with ctx.db() as db:
        rec = await db.get(Recording, recording_id)
        if rec is None:
            raise JobFailed(f"recording #{recording_id} no longer exists")
        if rec.state in (RecordingState.RECORDING, RecordingState.FINALIZING):
            raise NotReady(WAIT_FOR_PIECES_S, f"recording #{recording_id} is still {rec.state}")
        if rec.state == RecordingState.FAILED or rec.path is None:
            raise JobFailed(f"recording #{recording_id} failed: {rec.error or 'no file'}")
        relative, has_audio, conversation_id = rec.path, rec.has_audio, rec.conversation_id
        wanted = await ahead.wanted_draft(db, ctx.settings, rec)
        language, hotwords, journal_rel = wanted.language, wanted.hotwords, rec.journal_path
    if not has_audio:
        await ctx.progress(1.0, "no audio in this piece")
        return
    unknown = unsupported_language(
        ctx.settings.transcript_model, language or "", "JUNTO_TRANSCRIPT_MODEL"
    )
    if unknown is not None:
        # Forced to English, the model writes English words that sound like the speech:
        # store none (the build then makes an empty transcript) and say why.
        async with ctx.db() as db:
            await save_track(db, recording_id, ctx.settings.transcript_model, [])
            await _wake_build(db, conversation_id, ctx.job_id)
            await db.commit()
        await ctx.progress(1.0, unknown)
        return
    try:
        path = store.inside_data_dir(ctx.settings.data_dir, relative)
    except ValueError as exc:
        raise JobFailed(str(exc)) from exc
    if not path.is_file():
        raise JobFailed(f"the recording file {relative} is missing")
    # What was transcribed while the piece was recorded stands; only the rest is heard now.
    draft, draft_file = None, None
    with contextlib.suppress(ValueError):  # a journal path outside the data folder: no draft
        draft_file = ahead.draft_path(ctx.settings.data_dir, journal_rel) if journal_rel else None
    if draft_file is not None:
        draft = await asyncio.to_thread(ahead.usable_draft, draft_file, wanted)
    early = draft.word_list() if draft is not None else []
    await ctx.progress(0.0, "transcribing")
    model = ctx.settings.transcript_model

    def report(fraction: float) -> None:
        ctx.progress_from_thread(min(0.99, fraction), "transcribing")

    # CPU-bound for seconds to minutes: in a thread, so the worker's loop keeps renewing the
    # job's lease (a worker that stopped renewing would be presumed dead).
    words = await asyncio.to_thread(
        transcribe_file,
        path,
        model,
        ctx.settings.transcript_beam,
        ctx.settings,
        report,
        language,
        hotwords,
        draft.upto_s if draft is not None else 0.0,
    )
    async with ctx.db() as db:
        await save_track(db, recording_id, model, early + words)
        await _wake_build(db, conversation_id, ctx.job_id)
        await db.commit()
    if draft is not None and draft_file is not None:
        # Its words are the track's now; a retry transcribes the file whole.
        await asyncio.to_thread(draft_file.unlink, True)
        await ctx.progress(
            1.0, f"{len(early) + len(words)} words ({len(early)} transcribed while recorded)"
        )
    else:
        await ctx.progress(1.0, f"{len(words)} words")


async def save_track(db: AsyncSession, recording_id: int, model: str, words: list[Word]) -> None:
    """Store (or replace) a piece's words: [[start_s, end_s, word, probability], ...], each
    word as Whisper's piece (a leading space where a new word starts, none on ",500" after
    "4"), so the merge knows which pieces belong together (junto.speech.words)."""
    data = [
        [round(w.start_s, 3), round(w.end_s, 3), _piece(w), round(w.probability, 3)] for w in words
    ]
    await db.execute(delete(TrackTranscript).where(TrackTranscript.recording_id == recording_id))
    db.add(
        TrackTranscript(
            recording_id=recording_id, model=model, words=json.dumps(data), created_at=utcnow()
        )
    )


async def _wake_build(db: AsyncSession, conversation_id: int, this_job: int) -> None:
    """The last track's words are in: the build, which postponed itself to wait for them
    (WAIT_FOR_TRACKS_S), runs now instead of after whatever a worker claims meanwhile."""
    others = await db.scalar(
        select(Job.id)
        .where(
            Job.kind == TRACK_KIND,
            Job.conversation_id == conversation_id,
            Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
            Job.id != this_job,
        )
        .limit(1)
    )
    if others is None:
        await wake(db, BUILD_KIND, conversation_id)


def _piece(word: Word) -> str:
    return word.text if word.joins else " " + word.text


# ---- transcript.build -------------------------------------------------------------------------


async def build(ctx: JobContext) -> None:
    """Handler of `transcript.build`: merge the transcribed pieces into the transcript."""
    conversation_id = _payload_id(ctx, "conversation_id")
    async with ctx.db() as db:
        conv = await db.get(Conversation, conversation_id)
        if conv is None:
            raise JobFailed(f"conversation #{conversation_id} no longer exists")
        await _check_ready(db, conv)
        if await _has_edits(db, conversation_id):
            # Hosts' corrections outrank a machine's second opinion: keep them.
            note = "kept the edited transcript"
        else:
            pieces = await _pieces(db, conv)
            people = await conversation_names(db, conversation_id)
            segs = merge.segments(names.respell_names(merge.timeline_words(pieces), people))
            models = await _models(db, conversation_id)
            await _replace(db, conversation_id, segs, models or ctx.settings.transcript_model)
            await db.commit()
            note = f"{len(segs)} segments"
        text = await store.as_vtt(db, conversation_id)
        # What is learnt from the transcript (summary, search index) follows it.
        await processing.after_transcript(db, conversation_id)
        await db.commit()
    if text is not None:
        target = vtt.file_path(ctx.settings.data_dir, conversation_id)
        await asyncio.to_thread(vtt.write, target, text)
    await ctx.progress(1.0, note)


async def _check_ready(db: AsyncSession, conv: Conversation) -> None:
    """Raise NotReady or JobFailed unless every piece with audio has its words."""
    if conv.state not in (ConversationState.ENDED, ConversationState.PUBLISHED):
        raise NotReady(WAIT_FOR_END_S, f"the conversation is {conv.state}, not ended yet")
    rows = await db.execute(select(Recording).where(Recording.conversation_id == conv.id))
    recs = list(rows.scalars())
    busy = [r for r in recs if r.state in (RecordingState.RECORDING, RecordingState.FINALIZING)]
    if busy:
        raise NotReady(WAIT_FOR_PIECES_S, f"{len(busy)} recording piece(s) still being finalized")
    done = set(
        (
            await db.execute(
                select(TrackTranscript.recording_id).where(
                    TrackTranscript.recording_id.in_([r.id for r in recs])
                )
            )
        ).scalars()
    )
    missing = [r for r in recs if r.state == RecordingState.READY and r.has_audio]
    missing = [r for r in missing if r.id not in done]
    if not missing:
        return
    jobs = await _track_jobs(db, conv.id, {r.id for r in missing})
    waiting = 0
    for rec in missing:
        job = jobs.get(rec.id)
        if job is not None and job.state == JobState.FAILED:
            user = await db.get(User, rec.user_id)
            name = user.display_name if user else f"user {rec.user_id}"
            raise JobFailed(
                f"the track of {name} could not be transcribed (job #{job.id}): "
                f"{job.error or 'unknown error'}; retry it, then retry this job"
            )
        if job is None or job.state == JobState.SUCCEEDED:
            # No job (never enqueued, or its row was cleaned up) or one that succeeded before the
            # piece's file was replaced: ask for the words again rather than wait forever.
            await enqueue(
                db, TRACK_KIND, {"recording_id": rec.id}, conversation_id=conv.id, unique=True
            )
            await db.commit()
        waiting += 1
    raise NotReady(WAIT_FOR_TRACKS_S, f"waiting for {waiting} track(s) to be transcribed")


async def _track_jobs(db: AsyncSession, conversation_id: int, ids: set[int]) -> dict[int, Job]:
    """The latest transcript.track job of each recording in `ids`."""
    rows = await db.execute(
        select(Job)
        .where(
            Job.kind == TRACK_KIND,
            (Job.conversation_id == conversation_id) | Job.conversation_id.is_(None),
        )
        .order_by(Job.id)
    )
    latest: dict[int, Job] = {}
    for job in rows.scalars():
        try:
            recording_id = json.loads(job.payload).get("recording_id")
        except (ValueError, AttributeError):
            continue
        if recording_id in ids:
            latest[recording_id] = job
    return latest


async def _has_edits(db: AsyncSession, conversation_id: int) -> bool:
    found = await db.execute(
        select(TranscriptSegment.id)
        .where(TranscriptSegment.conversation_id == conversation_id, TranscriptSegment.edited)
        .limit(1)
    )
    return found.first() is not None


async def _pieces(db: AsyncSession, conv: Conversation) -> list[merge.Piece]:
    rows = await db.execute(
        select(Recording, TrackTranscript)
        .join(TrackTranscript, TrackTranscript.recording_id == Recording.id)
        .where(Recording.conversation_id == conv.id, Recording.state == RecordingState.READY)
        .order_by(Recording.started_at, Recording.id)
    )
    pairs = [(r, t) for r, t in rows.all()]
    origin = conv.started_at or min((r.started_at for r, _t in pairs), default=utcnow())
    return [
        merge.Piece(rec.user_id, _offset_ms(origin, rec.started_at), json.loads(track.words))
        for rec, track in pairs
    ]


def _offset_ms(origin: datetime, started_at: datetime) -> int:
    return round((started_at - origin).total_seconds() * 1000)


async def _models(db: AsyncSession, conversation_id: int) -> str:
    rows = await db.execute(
        select(TrackTranscript.model)
        .join(Recording, Recording.id == TrackTranscript.recording_id)
        .where(Recording.conversation_id == conversation_id)
        .distinct()
    )
    return ", ".join(sorted(rows.scalars()))[:200]


async def _replace(
    db: AsyncSession, conversation_id: int, segs: list[merge.Segment], model: str
) -> None:
    now = utcnow()
    await db.execute(
        delete(TranscriptSegment).where(TranscriptSegment.conversation_id == conversation_id)
    )
    transcript = await db.get(Transcript, conversation_id)
    if transcript is None:
        db.add(
            Transcript(conversation_id=conversation_id, model=model, created_at=now, updated_at=now)
        )
    else:
        transcript.model, transcript.updated_at = model, now
    rows = [
        TranscriptSegment(
            conversation_id=conversation_id,
            seq=seq,
            user_id=seg.user_id,
            start_ms=seg.start_ms,
            end_ms=seg.end_ms,
            text=seg.text,
            words=json.dumps(seg.entries()),
            edited=False,
            updated_at=now,
        )
        for seq, seg in enumerate(segs)
    ]
    db.add_all(rows)
    await db.flush()
