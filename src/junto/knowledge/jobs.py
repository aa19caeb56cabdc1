"""`knowledge.extract` {"conversation_id"}: learn from the conversation's current transcript.

Queued by junto.processing when the transcript is built and after every correction, so the
knowledge always follows the transcript. The offline backend always runs; the LLM backend
(when JUNTO_LLM_URL is set) writes over it, and when the LLM fails its error is stored beside
the offline result, which stands.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.knowledge import llm, offline, store
from junto.knowledge.embeddings import get_embedder
from junto.knowledge.sentences import segments_from_rows, split
from junto.storage.tables import Conversation, Participant, Transcript, TranscriptSegment, User

KIND = "knowledge.extract"


async def extract(ctx: JobContext) -> None:
    raw = ctx.payload.get("conversation_id")
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise JobFailed("payload has no conversation_id")
    async with ctx.db() as db:
        conv = await db.get(Conversation, raw)
        if conv is None:
            raise JobFailed(f"conversation #{raw} no longer exists")
        transcript = await db.get(Transcript, raw)
        if transcript is None:
            raise NotReady(30, "waiting for the transcript")
        stamp = transcript.updated_at
        rows = (
            await db.execute(
                select(TranscriptSegment)
                .where(TranscriptSegment.conversation_id == raw)
                .order_by(TranscriptSegment.seq)
            )
        ).scalars()
        segments = segments_from_rows(rows)
        people = {
            uid: name
            for uid, name in await db.execute(
                select(User.id, User.display_name)
                .join(Participant, Participant.user_id == User.id)
                .where(Participant.conversation_id == raw)
            )
        }
        for seg in segments:  # a speaker who left the participants still has a name
            if seg.speaker_id is not None and seg.speaker_id not in people:
                user = await db.get(User, seg.speaker_id)
                people[seg.speaker_id] = user.display_name if user else ""
    sentences = split(segments)
    await ctx.progress(0.1, f"{len(sentences)} sentences")
    knowledge = await asyncio.to_thread(offline.extract, sentences, get_embedder(), people)
    error: str | None = None
    if ctx.settings.llm_url and sentences:
        await ctx.progress(0.5, "asking the LLM")
        try:
            knowledge = await llm.extract(ctx.settings, sentences, people, knowledge)
        except llm.LlmError as exc:
            error = str(exc)
    async with ctx.db() as db:
        saved = await store.save(db, raw, knowledge, error, stamp)
        await db.commit()
    if not saved:
        await ctx.progress(1.0, "the transcript changed meanwhile; newer knowledge is kept")
        return
    note = f"{len(knowledge.chapters)} chapters, {len(knowledge.topics)} topics"
    await ctx.progress(1.0, note + (f" (LLM failed: {error})" if error else ""))
