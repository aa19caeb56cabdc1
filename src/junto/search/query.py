"""Hybrid search: keyword and semantic candidates, scored together, then filtered.

The candidates are the keyword index's best (FTS5 / PostgreSQL full text) and the vector index's
nearest. Each is scored the same way on both databases (issue 13):

    score = W_SEMANTIC * cosine(query, passage) + W_WORDS * coverage(query's words, passage)

where coverage is the share of the query's content words the passage holds (the word or its
stem: 1; only a word that sounds the same, as Whisper mishears "launch" as "lunch": 0.7; see
search.lexical). Stop words never count. Scores, not ranks, are fused: reciprocal-rank fusion
(the previous method) let every passage holding one query word outrank a passage that matches
in meaning at the top of the semantic list, so a misheard key word hid the moment, and it needed
a cosine cut that dropped real matches.

A candidate is kept if it holds a query word, or its cosine is at least MIN_COSINE, or it holds
a sound-alike and its cosine is at least SOUND_MIN_COSINE, so that a query with no real match
returns nothing rather than the nearest noise. The weights and floors were chosen on the labelled
paraphrase set in tests/search/meetings.json (docs/ARCHITECTURE.md, search): recall@3 is 0.975
for W_SEMANTIC from 0.3 to 0.7; 0.5 has the best mean reciprocal rank. No "nothing" query's
best cosine reaches 0.23; every labelled answer is found above 0.25 or by a sound-alike.

Only passages of published, public conversations (and their snippets) come out; the filters
(speaker, topic, dates, language) and the sort are applied to the candidates.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol

import numpy as np
from markupsafe import Markup, escape
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.enums import ConversationState, Visibility
from junto.knowledge import store as knowledge_store
from junto.search import keyword, lexical
from junto.search.vectors import DIM
from junto.storage.tables import (
    Conversation,
    ConversationTag,
    Participant,
    SearchPassage,
    Snippet,
    User,
)

W_SEMANTIC = 0.5
W_WORDS = 0.5
MIN_COSINE = 0.25
SOUND_MIN_COSINE = 0.15
CANDIDATES = 100
# Filters are applied to the fused candidates, so a narrow one (a speaker who said little, one
# day) needs a wider pool to find anything: 10x, still bounded (~2x the unfiltered cost).
FILTERED_CANDIDATES = 1000

Sort = Literal["relevance", "recency", "listeners"]


class Vectors(Protocol):
    """Where the semantic candidates come from: junto.search.vectorstore.VectorStore (the
    search benchmark plugs in the old numpy IVF beside it)."""

    async def refresh(self, db: AsyncSession) -> None: ...

    async def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...


@dataclass(frozen=True)
class Filters:
    speaker: str | None = None  # a user id or a display name
    topic: str | None = None  # a conversation tag or a knowledge topic label
    date_from: date | None = None
    date_to: date | None = None
    language: str | None = None

    @property
    def narrowing(self) -> bool:
        return any((self.speaker, self.topic, self.date_from, self.date_to, self.language))


@dataclass(frozen=True)
class Hit:
    passage_id: int
    conversation_slug: str
    conversation_title: str
    started_at: datetime | None
    speaker_id: int | None
    speaker: str | None
    start_ms: int
    end_ms: int
    text: str
    html: Markup  # the text, escaped, with the query's words in <mark>
    url: str
    language: str
    listeners: int
    score: float
    snippet_slug: str | None = None
    snippet_title: str | None = None


@dataclass
class Results:
    total: int
    hits: list[Hit] = field(default_factory=list)
    semantic: bool = True  # False if the embedding model was unavailable


async def search(
    db: AsyncSession,
    vectors: Vectors,
    query: str,
    filters: Filters,
    sort: Sort = "relevance",
    limit: int = 20,
    offset: int = 0,
) -> Results:
    query = query[: keyword.MAX_QUERY_CHARS]
    pool = FILTERED_CANDIDATES if filters.narrowing else CANDIDATES
    # The query's embedding (a thread, no database) runs while the keyword query does.
    embedding = asyncio.create_task(_embed(query))
    try:
        kw = await keyword.candidates(db, query, pool)
    except BaseException:
        embedding.cancel()
        raise
    vector = await embedding
    sem, semantic_ok = await _semantic(db, vectors, vector, pool)
    ids = {pid for pid, _ in kw} | {pid for pid, _ in sem}
    if not ids:
        return Results(0, [], semantic_ok)
    # Every candidate is scored by its stored float16 vector: the index's int8 cosines are
    # only good enough to find candidates (junto.search.vectors).
    rows = await _hydrate(db, list(ids), filters)
    if filters.topic:
        rows = await _topic_filter(db, rows, filters.topic)
    terms = lexical.query_terms(query)
    cosines = _cosines(rows, vector if semantic_ok else None)
    scored = _score(rows, terms, cosines, {p for p, _ in kw}, keyword_full=len(kw) >= pool)
    # Ties (no model, or equal scores): the keyword index's order, then the newest.
    kw_rank = {pid: i for i, (pid, _) in enumerate(kw)}
    scored.sort(key=lambda x: (-x[1], kw_rank.get(x[0].id, len(kw_rank)), -x[0].id))
    if sort == "recency":
        scored.sort(key=lambda x: x[0].started_at or datetime.min.replace(tzinfo=UTC),
                    reverse=True)  # fmt: skip
    elif sort == "listeners":
        scored.sort(key=lambda x: x[0].listeners, reverse=True)
    # Highlighting and placing the moment cost ~50 us a passage: only for the page shown.
    page = [_hit(r, score, terms, sounded) for r, score, sounded in scored[offset : offset + limit]]
    return Results(len(scored), page, semantic_ok)


# Sound-alikes are looked for only among the passages nearest in meaning: a misheard word is
# rescued by a meaning that agrees, and the check costs ~10 us a passage.
SOUND_CHECK = 30


def _score(
    rows: list[Row],
    terms: list[lexical.Term],
    cosines: np.ndarray,
    keyword_ids: set[int],
    keyword_full: bool,
) -> list[tuple[Row, float, bool]]:
    """(row, score, whether a sound-alike counted) of the rows worth showing (module
    docstring)."""
    near = np.argsort(-cosines)[:SOUND_CHECK]
    sound_rows = {int(i) for i in near if cosines[i] >= SOUND_MIN_COSINE}
    out: list[tuple[Row, float, bool]] = []
    for i, r in enumerate(rows):
        cos = float(cosines[i])
        # A passage the keyword side did not return holds none of the words, unless that side
        # stopped at its limit: then it is checked like the others.
        if r.id in keyword_ids or keyword_full or i in sound_rows:
            words, sounds = lexical.shares(r.text, terms, by_sound=i in sound_rows)
        else:
            words, sounds = 0.0, 0.0
        if cos >= MIN_COSINE or words > 0 or r.id in keyword_ids or sounds > 0:
            coverage = words + lexical.SOUND_CREDIT * sounds
            out.append((r, W_SEMANTIC * cos + W_WORDS * coverage, sounds > 0))
    return out


def _cosines(rows: list[Row], vector: np.ndarray | None) -> np.ndarray:
    """Each row's cosine to the query (0 without a model or an embedding), from the row's
    stored unit float16 vector (one dot product for all of them)."""
    out = np.zeros(len(rows), dtype=np.float32)
    if vector is None or vector.size != DIM:
        return out
    have = [
        i for i, r in enumerate(rows) if r.embedding is not None and len(r.embedding) == DIM * 2
    ]
    if have:
        blob = b"".join(rows[i].embedding or b"" for i in have)
        matrix = np.frombuffer(blob, dtype="<f2").reshape(len(have), DIM).astype(np.float32)
        out[have] = matrix @ np.asarray(vector, dtype=np.float32)
    return out


async def _embed(query: str) -> np.ndarray | None:
    """The query's vector; None when it has no words or no model can be loaded."""
    from junto.knowledge.embeddings import EmbeddingUnavailable, get_embedder

    if not keyword.words(query):
        return np.zeros(0, dtype=np.float32)
    try:
        embedder = await asyncio.to_thread(get_embedder)
        return np.asarray((await asyncio.to_thread(embedder.embed, [query]))[0])
    except EmbeddingUnavailable:
        return None


async def _semantic(
    db: AsyncSession, vectors: Vectors, vector: np.ndarray | None, pool: int
) -> tuple[list[tuple[int, float]], bool]:
    if vector is None:
        return [], False
    if vector.size == 0:  # nothing to look for
        return [], True
    await vectors.refresh(db)
    return await vectors.search(vector, pool), True


@dataclass(frozen=True)
class Row:
    """A candidate passage with what ranking, filtering and display need."""

    id: int
    conversation_id: int
    user_id: int | None
    start_ms: int
    end_ms: int
    text: str
    language: str
    display_name: str | None
    snippet_slug: str | None
    snippet_title: str | None
    embedding: bytes | None  # float16, for the cosine of keyword-only candidates
    slug: str = ""
    title: str = ""
    started_at: datetime | None = None
    listeners: int = 0


async def _hydrate(db: AsyncSession, ids: list[int], filters: Filters) -> list[Row]:
    """The candidates that may be shown, with their stored vectors (768 bytes a row): two small
    queries, each driven by primary keys (one joined query let SQLite start from the published
    conversations and scan their passages)."""
    stmt = (
        select(
            SearchPassage.id,
            SearchPassage.conversation_id,
            SearchPassage.user_id,
            SearchPassage.start_ms,
            SearchPassage.end_ms,
            SearchPassage.text,
            SearchPassage.language,
            User.display_name,
            Snippet.slug,
            Snippet.title,
            SearchPassage.embedding,
        )
        .outerjoin(User, User.id == SearchPassage.user_id)
        .outerjoin(Snippet, Snippet.id == SearchPassage.snippet_id)
        .where(
            SearchPassage.id.in_(ids),
            or_(SearchPassage.snippet_id.is_(None), Snippet.state != "failed"),
        )
    )
    if filters.speaker:
        who = filters.speaker.strip()
        if who.isdigit() and len(who) < 10:
            stmt = stmt.where(SearchPassage.user_id == int(who))
        else:
            stmt = stmt.where(
                or_(
                    func.lower(User.display_name) == who.lower(),
                    func.lower(User.username) == who.lower(),
                )
            )
    if filters.language:
        lang = filters.language.lower()
        stmt = stmt.where(
            or_(SearchPassage.language == lang, SearchPassage.language.like(f"{lang}-%"))
        )
    passages = [Row(*r) for r in (await db.execute(stmt)).all()]
    if not passages:
        return []
    listeners = (
        select(func.count())
        .select_from(Participant)
        .where(Participant.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    convs = select(
        Conversation.id, Conversation.slug, Conversation.title, Conversation.started_at, listeners
    ).where(
        Conversation.id.in_({p.conversation_id for p in passages}),
        Conversation.state == ConversationState.PUBLISHED,
        Conversation.visibility == Visibility.PUBLIC,
    )
    if filters.date_from:
        start = datetime.combine(filters.date_from, time.min, UTC)
        convs = convs.where(Conversation.started_at >= start)
    if filters.date_to:
        end = datetime.combine(filters.date_to, time.min, UTC) + timedelta(days=1)
        convs = convs.where(Conversation.started_at < end)
    shown = {c[0]: c[1:] for c in (await db.execute(convs)).all()}
    out: list[Row] = []
    for p in passages:
        if p.conversation_id in shown:
            slug, title, started_at, count = shown[p.conversation_id]
            out.append(replace(p, slug=slug, title=title, started_at=started_at,
                               listeners=int(count or 0)))  # fmt: skip
    return out


async def _topic_filter(db: AsyncSession, rows: list[Row], topic: str) -> list[Row]:
    wanted = topic.strip().lower()
    conv_ids = {r.conversation_id for r in rows}
    tagged = set(
        (
            await db.execute(
                select(ConversationTag.conversation_id).where(
                    and_(
                        ConversationTag.conversation_id.in_(conv_ids),
                        func.lower(ConversationTag.tag) == wanted,
                    )
                )
            )
        ).scalars()
    )
    for cid in conv_ids - tagged:
        knowledge = await knowledge_store.load(db, cid)
        if knowledge and any(t.label.strip().lower() == wanted for t in knowledge.topics):
            tagged.add(cid)
    return [r for r in rows if r.conversation_id in tagged]


def _hit(r: Row, score: float, terms: list[lexical.Term], by_sound: bool) -> Hit:
    start = moment_ms(r.text, r.start_ms, r.end_ms, terms, by_sound)
    if r.snippet_slug:
        url = f"/s/{r.snippet_slug}"
    else:
        url = f"/c/{r.slug}?t={start // 1000}"
    return Hit(
        passage_id=r.id,
        conversation_slug=r.slug,
        conversation_title=r.title,
        started_at=r.started_at,
        speaker_id=r.user_id,
        speaker=r.display_name,
        start_ms=start,
        end_ms=r.end_ms,
        text=r.text,
        html=highlight(r.text, terms, by_sound),
        url=url,
        language=r.language,
        listeners=r.listeners,
        score=round(score, 6),
        snippet_slug=r.snippet_slug,
        snippet_title=r.snippet_title,
    )


_SENTENCE_END = re.compile(r"(?<=[.?!…])\s+")


def moment_ms(
    text: str, start_ms: int, end_ms: int, terms: list[lexical.Term], by_sound: bool = True
) -> int:
    """When, within the passage, the sentence that matches the query best begins.

    Passages keep only their first and last word times, so a sentence's start is placed by its
    first word's position in the passage (words are spoken at an even pace within 20 s, so this
    lands within a second or two). Ties and no overlap give the passage's start.
    """
    sentences = _SENTENCE_END.split(text)
    if len(sentences) < 2 or not terms:
        return start_ms
    total = len(lexical.tokens(text)) or 1
    best, best_at, seen = 0.0, 0, 0
    for sentence in sentences:
        tokens = lexical.tokens(sentence)
        overlap = lexical.matches(tokens, terms, by_sound).coverage
        if overlap > best:
            best, best_at = overlap, seen
        seen += len(tokens)
    return start_ms + (end_ms - start_ms) * best_at // total


def highlight(text: str, terms: list[lexical.Term], by_sound: bool = True) -> Markup:
    """The text, escaped, with the words that match the query (the word, its stem or a word
    that sounds the same) wrapped in <mark>; stop words never. Every piece of the stored text
    goes through escape() (Markup.format escapes its argument too)."""
    found = list(lexical.TOKEN.finditer(text))
    marked = lexical.matches([m.group(0).lower() for m in found], terms, by_sound).marked
    out: list[Markup] = []
    pos = 0
    for i, m in enumerate(found):
        if i in marked:
            out.append(escape(text[pos : m.start()]))
            out.append(Markup("<mark>{}</mark>").format(m.group(0)))
            pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)
