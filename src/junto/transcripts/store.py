"""Reading a conversation's final transcript (and what it is waiting for) for pages and the API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import ConversationState, JobState, RecordingState
from junto.speech import webvtt
from junto.speech import words as wording
from junto.storage.tables import (
    Conversation,
    ConversationMedia,
    Job,
    Recording,
    Transcript,
    TranscriptSegment,
    User,
)
from junto.transcripts import vtt

TRANSCRIPT_JOBS = ("transcript.track", "transcript.build")
UNKNOWN_SPEAKER = "Unknown speaker"


@dataclass(frozen=True)
class View:
    """The transcript as people see it: `status` is "none", "processing" or "ready"."""

    status: str
    segments: list[dict[str, Any]]
    speakers: list[dict[str, Any]]
    model: str | None = None
    edited: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "model": self.model,
            "edited": self.edited,
            "segments": self.segments,
            "speakers": self.speakers,
        }


async def names(db: AsyncSession, user_ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in user_ids if i is not None}
    if not wanted:
        return {}
    rows = await db.execute(select(User).where(User.id.in_(wanted)))
    return {u.id: u for u in rows.scalars()}


def speaker_json(user_id: int | None, people: dict[int, User]) -> dict[str, Any] | None:
    if user_id is None:
        return None
    user = people.get(user_id)
    return {"id": user_id, "name": user.display_name if user else UNKNOWN_SPEAKER}


def segment_json(seg: TranscriptSegment, people: dict[int, User]) -> dict[str, Any]:
    return {
        "seq": seg.seq,
        "speaker": speaker_json(seg.user_id, people),
        "start_ms": seg.start_ms,
        "end_ms": seg.end_ms,
        "text": seg.text,
        "words": words_json(json.loads(seg.words)),
        "edited": bool(seg.edited),
    }


def words_json(entries: list[list[Any]]) -> list[list[Any]]:
    """[[start_ms, end_ms, word, joins], ...]: `joins` as stored, or by the rules for segments
    stored before it was (junto.speech.words)."""
    kept = [e for e in entries if str(e[2]).strip()]
    return [
        [int(e[0]), int(e[1]), str(e[2]).strip(), joins]
        for e, joins in zip(kept, wording.flags(kept), strict=True)
    ]


async def segment_rows(db: AsyncSession, conversation_id: int) -> Sequence[TranscriptSegment]:
    rows = await db.execute(
        select(TranscriptSegment)
        .where(TranscriptSegment.conversation_id == conversation_id)
        .order_by(TranscriptSegment.seq)
    )
    return rows.scalars().all()


async def processing(db: AsyncSession, conversation_id: int) -> bool:
    """True while a transcription job of this conversation is queued or running."""
    found = await db.execute(
        select(Job.id)
        .where(
            Job.conversation_id == conversation_id,
            Job.kind.in_(TRANSCRIPT_JOBS),
            Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
        )
        .limit(1)
    )
    return found.first() is not None


async def read(db: AsyncSession, conv: Conversation) -> View:
    """The transcript of `conv` with speaker names, or its status if there is none yet."""
    transcript = await db.get(Transcript, conv.id)
    if transcript is None:
        status = "processing" if await _expecting(db, conv) else "none"
        return View(status, [], [])
    rows = await segment_rows(db, conv.id)
    people = await names(db, (s.user_id for s in rows))
    segments = [segment_json(s, people) for s in rows]
    speakers: dict[int, dict[str, Any]] = {}
    for seg in segments:
        if seg["speaker"] is not None:
            speakers.setdefault(seg["speaker"]["id"], seg["speaker"])
    return View(
        "ready",
        segments,
        list(speakers.values()),
        model=transcript.model,
        edited=any(s.edited for s in rows),
    )


async def _expecting(db: AsyncSession, conv: Conversation) -> bool:
    if await processing(db, conv.id):
        return True
    # Between the end and the build job being enqueued (or while pieces are still finalizing)
    # there may be no job yet, but a transcript is clearly on its way.
    if conv.state not in (ConversationState.ENDED, ConversationState.PUBLISHED):
        return False
    pending = await db.execute(
        select(Recording.id)
        .where(
            Recording.conversation_id == conv.id,
            Recording.state.in_([RecordingState.RECORDING, RecordingState.FINALIZING]),
        )
        .limit(1)
    )
    return pending.first() is not None


async def media(db: AsyncSession, conversation_id: int) -> dict[str, ConversationMedia]:
    rows = await db.execute(
        select(ConversationMedia).where(ConversationMedia.conversation_id == conversation_id)
    )
    return {m.kind: m for m in rows.scalars()}


async def ready_pieces(db: AsyncSession, conversation_id: int) -> list[tuple[Recording, User]]:
    """The conversation's finished recording pieces with their speakers, in time order."""
    rows = await db.execute(
        select(Recording, User)
        .join(User, User.id == Recording.user_id)
        .where(
            Recording.conversation_id == conversation_id,
            Recording.state == RecordingState.READY,
            Recording.path.is_not(None),
        )
        .order_by(Recording.started_at, Recording.id)
    )
    return [(r, u) for r, u in rows.all()]


async def as_vtt(db: AsyncSession, conversation_id: int) -> str | None:
    """The transcript as WebVTT as it is now (with corrections), or None if there is none."""
    if await db.get(Transcript, conversation_id) is None:
        return None
    rows = await segment_rows(db, conversation_id)
    people = await names(db, (s.user_id for s in rows))
    return render_vtt(rows, people)


async def refresh_vtt_file(db: AsyncSession, data_dir: Path, conversation_id: int) -> None:
    """Rewrite `recordings/<id>/transcript.vtt` from the database (after a correction).

    The download route renders from the database; the file is for people who copy the data
    dir. Written in a thread: a long transcript's file is not a tiny write for the web loop."""
    text = await as_vtt(db, conversation_id)
    if text is not None:
        await asyncio.to_thread(vtt.write, vtt.file_path(data_dir, conversation_id), text)


def render_vtt(rows: Iterable[TranscriptSegment], people: dict[int, User]) -> str:
    cues = []
    for seg in rows:
        speaker = speaker_json(seg.user_id, people)
        name = speaker["name"] if speaker else ""
        cues.append(webvtt.Cue(seg.start_ms, seg.end_ms, name, seg.text))
    return webvtt.render(cues)


def inside_data_dir(data_dir: Path, relative: str) -> Path:
    """`data_dir / relative`, refusing (ValueError) anything that resolves outside the data
    dir: stored paths are relative, and a bad row must never expose other files."""
    root = data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{relative!r} is outside the data directory")
    return path
