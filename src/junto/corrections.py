"""Hosts' corrections of the final transcript: a segment's words or its speaker, with history,
and where a correction reaches: the snippets that show the segment and the search index.

Every accepted change is stored with what it replaced (`transcript_edits`), so nothing a
correction overwrites is lost; a refused change stores nothing at all. Corrections keep the
segment's place on the timeline: word timings survive when the word count is unchanged, and are
otherwise spread over the new words by length, so seeking by word still lands close.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from junto import conversations as convs
from junto import processing, snippets, user_text
from junto.conversations import ConversationError
from junto.search import passages
from junto.storage.tables import (
    Conversation,
    Participant,
    Recording,
    Transcript,
    TranscriptEdit,
    TranscriptSegment,
    User,
)
from junto.storage.types import utcnow
from junto.transcripts import store

TEXT_MAX = 5000
_NEWLINES = re.compile(r"\r\n?")


def clean_text(text: str) -> str:
    """The corrected text as it will be stored, or ConversationError 422 saying what is wrong."""
    text = _NEWLINES.sub("\n", text).strip()
    if not text:
        raise _invalid("text", "the text must not be empty")
    if len(text) > TEXT_MAX:
        raise _invalid("text", f"the text must be at most {TEXT_MAX} characters, got {len(text)}")
    # Control characters would corrupt captions and copy-paste, bidi controls would disguise
    # what was said (junto.user_text); newline is allowed.
    problem = user_text.unfit_character(text, allow="\n")
    if problem is not None:
        raise _invalid("text", f"the text {problem}")
    return text


def _invalid(field: str, message: str) -> ConversationError:
    return ConversationError(message, status=422, code="bad_message", field=field)


def retime(words: list[list[Any]], start_ms: int, end_ms: int, text: str) -> list[list[Any]]:
    """Timings for the words of `text`, from the segment's old `words`.

    Same count: word i keeps word i's timing. Otherwise the segment's span is shared out in
    proportion to each new word's length (long words take longer to say)."""
    # Each whitespace-separated token of a person's text is a word of its own (joins: False,
    # see junto.speech.words): they typed "$4,500" as one.
    new = text.split()
    if len(new) == len(words):
        return [
            [int(old[0]), int(old[1]), word, False] for old, word in zip(words, new, strict=True)
        ]
    span = max(0, end_ms - start_ms)
    total = sum(len(w) for w in new)
    out: list[list[Any]] = []
    used = 0
    for word in new:
        begin = start_ms + span * used // total
        used += len(word)
        out.append([begin, start_ms + span * used // total, word, False])
    return out


async def _speaker_allowed(db: AsyncSession, conv: Conversation, user_id: int) -> bool:
    """Anyone with a participant row (everyone who was on stage has one), or anyone recorded."""
    if await db.get(Participant, (conv.id, user_id)) is not None:
        return True
    recorded = await db.execute(
        select(Recording.id)
        .where(Recording.conversation_id == conv.id, Recording.user_id == user_id)
        .limit(1)
    )
    return recorded.first() is not None


async def _segment(db: AsyncSession, conv: Conversation, seq: int) -> TranscriptSegment:
    if await db.get(Transcript, conv.id) is None:
        raise ConversationError(
            "this conversation has no transcript yet; it is made after the conversation ends",
            status=409,
            code="invalid_state",
        )
    found = await db.execute(
        select(TranscriptSegment)
        .where(TranscriptSegment.conversation_id == conv.id, TranscriptSegment.seq == seq)
        .with_for_update()
    )
    seg = found.scalar_one_or_none()
    if seg is None:
        raise ConversationError(
            f"the transcript has no segment {seq}", status=404, code="not_found"
        )
    return seg


async def edit_segment(
    db: AsyncSession,
    conv: Conversation,
    seq: int,
    editor: User,
    text: str | None = None,
    speaker_id: int | None = None,
) -> TranscriptSegment:
    """Correct segment `seq`'s text and/or speaker (hosts, co-hosts, admins) and commit.

    Raises ConversationError: 403 for non-managers, 409 without a transcript, 404 for an
    unknown segment, 422 for bad input (nothing is changed then)."""
    await convs.require_manager(db, conv, editor, "correct the transcript of")
    if text is None and speaker_id is None:
        raise _invalid("text", "send the corrected text, a speaker_id, or both")
    new_text = clean_text(text) if text is not None else None
    seg = await _segment(db, conv, seq)
    if speaker_id is not None and not await _speaker_allowed(db, conv, speaker_id):
        raise _invalid(
            "speaker_id",
            f"user {speaker_id} is not a participant of this conversation; the speaker must be "
            "someone who took part in it",
        )
    changes: list[TranscriptEdit] = []
    values: dict[str, Any] = {}
    if new_text is not None and new_text != seg.text:
        changes.append(_edit(seg, editor, "text", seg.text, new_text))
        words = retime(json.loads(seg.words), seg.start_ms, seg.end_ms, new_text)
        values.update(text=new_text, words=json.dumps(words))
    if speaker_id is not None and speaker_id != seg.user_id:
        before = "" if seg.user_id is None else str(seg.user_id)
        changes.append(_edit(seg, editor, "speaker", before, str(speaker_id)))
        values.update(user_id=speaker_id)
    if not changes:
        await db.commit()  # nothing to store; ends the transaction (and its row lock)
        return seg
    now = utcnow()
    # Conditional on the segment being as we read it: PostgreSQL holds the row lock anyway,
    # but SQLite takes no lock on reading, and two hosts saving at once must not record a
    # history whose "before" is not what the other one's change replaced.
    unchanged = (TranscriptSegment.text == seg.text) & (
        TranscriptSegment.user_id.is_(None)
        if seg.user_id is None
        else TranscriptSegment.user_id == seg.user_id
    )
    result = await db.execute(
        update(TranscriptSegment)
        .where(TranscriptSegment.id == seg.id, unchanged)
        .values(**values, edited=True, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        # Nothing was written; the caller's session ends the transaction.
        raise ConversationError(
            "someone else corrected this segment at the same moment; reload and try again",
            status=409,
            code="conflict",
        )
    db.add_all(changes)
    await db.execute(
        update(Transcript).where(Transcript.conversation_id == conv.id).values(updated_at=now)
    )
    # In the same transaction: the words a correction removes (perhaps a private detail) leave
    # the snippets cut from this segment and the search index the moment the correction lands.
    await snippets.follow_correction(db, conv.id, seg.start_ms, seg.end_ms)
    await passages.forget_span(db, conv.id, seg.start_ms, seg.end_ms)
    await processing.after_transcript(db, conv.id, delay_s=processing.EDIT_SETTLE_S)
    await db.commit()
    await db.refresh(seg)
    return seg


def _edit(
    seg: TranscriptSegment, editor: User, field: str, before: str, after: str
) -> TranscriptEdit:
    return TranscriptEdit(
        segment_id=seg.id,
        conversation_id=seg.conversation_id,
        editor_id=editor.id,
        field=field,
        before=before,
        after=after,
        created_at=utcnow(),
    )


async def history(
    db: AsyncSession, conv: Conversation, seq: int | None = None
) -> list[dict[str, Any]]:
    """Every correction (oldest first), optionally of one segment, with editors' names.

    Speaker changes are stored as user ids; `before`/`after` give the names, `before_id`/
    `after_id` the ids."""
    query = (
        select(TranscriptEdit, TranscriptSegment.seq)
        .join(TranscriptSegment, TranscriptSegment.id == TranscriptEdit.segment_id)
        .where(TranscriptEdit.conversation_id == conv.id)
        .order_by(TranscriptEdit.id)
    )
    if seq is not None:
        query = query.where(TranscriptSegment.seq == seq)
    rows = [(e, s) for e, s in (await db.execute(query)).all()]
    ids: set[int] = set()
    for edit, _seq in rows:
        ids.add(edit.editor_id)
        if edit.field == "speaker":
            ids.update(int(v) for v in (edit.before, edit.after) if v.isdigit())
    people = await store.names(db, ids)
    return [_history_entry(edit, s, people) for edit, s in rows]


def _history_entry(edit: TranscriptEdit, seq: int, people: dict[int, User]) -> dict[str, Any]:
    editor = store.speaker_json(edit.editor_id, people)
    entry: dict[str, Any] = {
        "id": edit.id,
        "seq": seq,
        "field": edit.field,
        "before": edit.before,
        "after": edit.after,
        "editor": editor,
        "at": convs.iso(edit.created_at),
    }
    if edit.field == "speaker":
        for key in ("before", "after"):
            raw = entry[key]
            entry[f"{key}_id"] = int(raw) if raw.isdigit() else None
            speaker = store.speaker_json(int(raw), people) if raw.isdigit() else None
            entry[key] = speaker["name"] if speaker else store.UNKNOWN_SPEAKER
    return entry
