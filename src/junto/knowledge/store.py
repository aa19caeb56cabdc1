"""Reading and writing a conversation's knowledge (table conversation_knowledge)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from junto.knowledge.model import Knowledge
from junto.storage.tables import ConversationKnowledge
from junto.storage.types import utcnow


async def load(db: AsyncSession, conversation_id: int) -> Knowledge | None:
    """The conversation's knowledge, or None if none was computed (or it cannot be read)."""
    row = await db.get(ConversationKnowledge, conversation_id)
    if row is None:
        return None
    try:
        return Knowledge.model_validate_json(row.data)
    except ValidationError:
        return None  # written by an older, incompatible version: the next job replaces it


async def row(db: AsyncSession, conversation_id: int) -> ConversationKnowledge | None:
    return await db.get(ConversationKnowledge, conversation_id)


async def save(
    db: AsyncSession,
    conversation_id: int,
    knowledge: Knowledge,
    error: str | None,
    transcript_updated_at: datetime | None,
) -> bool:
    """Replace the conversation's knowledge (the caller commits). Returns False, writing
    nothing, when what is stored was computed from a newer transcript: a job that read the
    transcript before a correction (and then waited on a slow LLM) must not overwrite the
    knowledge that a later job computed from the corrected text."""
    now = utcnow()
    existing = await db.get(ConversationKnowledge, conversation_id, populate_existing=True)
    if (
        existing is not None
        and existing.transcript_updated_at is not None
        and transcript_updated_at is not None
        and existing.transcript_updated_at > transcript_updated_at
    ):
        return False
    if existing is None:
        existing = ConversationKnowledge(conversation_id=conversation_id, created_at=now)
        db.add(existing)
    existing.backend = knowledge.backend
    existing.data = knowledge.model_dump_json()
    existing.error = error
    existing.transcript_updated_at = transcript_updated_at
    existing.updated_at = now
    await db.flush()
    return True
