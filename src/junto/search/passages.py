"""Passages: the unit search finds. A few sentences of one speaker with exact times.

A passage is 1-3 sentences (knowledge.sentences, times from the words) of one transcript
segment, at most ~20 s, so a hit points at a short stretch one person said. Embeddings are
stored as float16 little-endian bytes (384 x 2 bytes), half the size of float32 with no loss
that changes a ranking.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.knowledge.embeddings import get_embedder
from junto.knowledge.sentences import Sentence, segments_from_rows, split
from junto.speech.words import join_words
from junto.storage.tables import Conversation, SearchPassage, Snippet, TranscriptSegment

MAX_SENTENCES = 3
MAX_MS = 20_000


@dataclass(frozen=True)
class Passage:
    text: str
    start_ms: int
    end_ms: int
    speaker_id: int | None


def cut(sentences: Sequence[Sentence]) -> list[Passage]:
    """Group consecutive sentences of one segment into passages of <= 3 sentences / ~20 s."""
    out: list[Passage] = []
    run: list[Sentence] = []

    def flush() -> None:
        if run:
            text = join_words((s.text, None) for s in run)  # "4" | ",500" cut at MAX_WORDS
            out.append(Passage(text, run[0].start_ms, run[-1].end_ms, run[0].speaker_id))
            run.clear()

    for sentence in sentences:
        if run and (
            sentence.seq != run[0].seq
            or len(run) >= MAX_SENTENCES
            or sentence.end_ms - run[0].start_ms > MAX_MS
        ):
            flush()
        run.append(sentence)
    flush()
    return out


def to_blob(vectors: np.ndarray) -> list[bytes]:
    half = np.ascontiguousarray(vectors, dtype="<f2")
    return [row.tobytes() for row in half]


async def embed(texts: Sequence[str]) -> np.ndarray:
    """Embed off the event loop (the model takes ~3 ms a sentence of CPU)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return await asyncio.to_thread(get_embedder().embed, list(texts))


async def conversation_passages(db: AsyncSession, conversation_id: int) -> list[Passage]:
    rows = (
        await db.execute(
            select(TranscriptSegment)
            .where(TranscriptSegment.conversation_id == conversation_id)
            .order_by(TranscriptSegment.seq)
        )
    ).scalars()
    return cut(split(segments_from_rows(rows)))


async def replace_conversation(
    db: AsyncSession, conv: Conversation, passages: Sequence[Passage], vectors: np.ndarray
) -> None:
    """Swap the conversation's transcript passages for these, in the caller's transaction
    (so searches see either the old set or the new one, never half)."""
    await db.execute(
        delete(SearchPassage).where(
            SearchPassage.conversation_id == conv.id, SearchPassage.snippet_id.is_(None)
        )
    )
    for passage, blob in zip(passages, to_blob(vectors), strict=True):
        db.add(
            SearchPassage(
                conversation_id=conv.id,
                user_id=passage.speaker_id,
                start_ms=passage.start_ms,
                end_ms=passage.end_ms,
                text=passage.text,
                language=conv.language or "en",
                embedding=blob,
            )
        )


async def forget_span(db: AsyncSession, conversation_id: int, start_ms: int, end_ms: int) -> None:
    """Remove the conversation's passages overlapping [start_ms, end_ms] (a corrected segment),
    in the caller's transaction, so that words a correction removed are not found while the
    queued `search.index` re-cuts them. The keyword index follows by itself (FTS5 triggers,
    generated tsvector); the vector index drops deleted ids when it joins candidates back."""
    await db.execute(
        delete(SearchPassage).where(
            SearchPassage.conversation_id == conversation_id,
            SearchPassage.snippet_id.is_(None),
            SearchPassage.start_ms <= end_ms,
            SearchPassage.end_ms >= start_ms,
        )
    )


def snippet_passage(snippet: Snippet) -> Passage:
    """A snippet is found by its title and its words, as one passage."""
    try:
        speakers = [int(s) for s in json.loads(snippet.speakers or "[]")]
    except (ValueError, TypeError):
        speakers = []
    title, words = snippet.title.strip(), snippet.text.strip()
    text = f"{title}. {words}" if title and words else title or words
    return Passage(text, snippet.start_ms, snippet.end_ms, speakers[0] if speakers else None)


async def replace_snippet(
    db: AsyncSession, snippet: Snippet, language: str, vector: np.ndarray
) -> None:
    await db.execute(delete(SearchPassage).where(SearchPassage.snippet_id == snippet.id))
    passage = snippet_passage(snippet)
    db.add(
        SearchPassage(
            conversation_id=snippet.conversation_id,
            snippet_id=snippet.id,
            user_id=passage.speaker_id,
            start_ms=passage.start_ms,
            end_ms=passage.end_ms,
            text=passage.text,
            language=language or "en",
            embedding=to_blob(vector.reshape(1, -1))[0],
        )
    )
