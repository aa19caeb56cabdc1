"""`knowledge.extract` {"conversation_id"}: learn from the conversation's current transcript.

Queued by junto.processing when the transcript is built and after every correction, so the
knowledge always follows the transcript. The configured backends (junto.knowledge.backends:
offline, then the LLM when JUNTO_LLM_URL is set) run in turn, each over the one before; when one
fails its error is stored beside what the earlier ones found, which stands.
"""

from __future__ import annotations

from sqlalchemy import select

from junto.jobs.context import JobContext, JobFailed, NotReady
from junto.knowledge import store
from junto.knowledge.backends import BackendError, configured
from junto.knowledge.model import Knowledge
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
    knowledge: Knowledge | None = None
    error: str | None = None
    backends = configured(ctx.settings)
    for i, backend in enumerate(backends):
        if i:
            await ctx.progress(0.1 + 0.8 * i / len(backends), f"asking the {backend.name} backend")
        try:
            knowledge = await backend.extract(sentences, people, knowledge)
        except BackendError as exc:
            if knowledge is None:  # nothing found at all: the job fails with the reason
                raise JobFailed(f"{backend.name}: {exc}") from exc
            error = f"{backend.name}: {exc}"
            break
    assert knowledge is not None, "configured() always lists the offline backend"
    async with ctx.db() as db:
        saved = await store.save(db, raw, knowledge, error, stamp)
        await db.commit()
    if not saved:
        await ctx.progress(1.0, "the transcript changed meanwhile; newer knowledge is kept")
        return
    note = f"{len(knowledge.chapters)} chapters, {len(knowledge.topics)} topics"
    await ctx.progress(1.0, note + (f" (failed: {error})" if error else ""))
