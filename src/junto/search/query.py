"""Hybrid search: keyword and semantic candidates fused by reciprocal rank, then filtered.

Fusion (Cormack et al. 2009): score = W_KEYWORD / (K + keyword rank) + W_SEMANTIC / (K +
semantic rank), ranks from 1. K = 60 (the paper's value: flattens the head so neither list's
top result dominates); both weights 1.0 (the lists are equally trusted: keywords find exact
names and numbers, embeddings find paraphrases). Semantic candidates below MIN_COSINE are
dropped, so a nonsense query does not return "nearest" noise.

Only passages of published, public conversations (and their snippets) come out; the filters
(speaker, topic, dates, language) and the sort are applied to the fused candidates.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import numpy as np
from markupsafe import Markup, escape
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from junto.knowledge import store as knowledge_store
from junto.search import keyword
from junto.search.vectorstore import store_for
from junto.storage.tables import (
    Conversation,
    ConversationState,
    ConversationTag,
    Participant,
    SearchPassage,
    Snippet,
    User,
    Visibility,
)

K = 60
W_KEYWORD = 1.0
W_SEMANTIC = 1.0
MIN_COSINE = 0.2
CANDIDATES = 100
# Filters are applied to the fused candidates, so a narrow one (a speaker who said little, one
# day) needs a wider pool to find anything: 10x, still bounded (~2x the unfiltered cost).
FILTERED_CANDIDATES = 1000

Sort = Literal["relevance", "recency", "listeners"]


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
    url: str,
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
    sem, semantic_ok = await _semantic(db, url, await embedding, pool)
    fused: dict[int, float] = {}
    for rank, (pid, _) in enumerate(kw, start=1):
        fused[pid] = fused.get(pid, 0.0) + W_KEYWORD / (K + rank)
    for rank, (pid, cos) in enumerate(sem, start=1):
        if cos >= MIN_COSINE:
            fused[pid] = fused.get(pid, 0.0) + W_SEMANTIC / (K + rank)
    if not fused:
        return Results(0, [], semantic_ok)
    rows = await _hydrate(db, list(fused), filters)
    if filters.topic:
        rows = await _topic_filter(db, rows, filters.topic)
    rows.sort(key=lambda r: -fused[r.id])
    if sort == "recency":
        rows.sort(key=lambda r: r.started_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    elif sort == "listeners":
        rows.sort(key=lambda r: r.listeners, reverse=True)
    terms = keyword.words(query)
    # Highlighting and placing the moment cost ~50 us a passage: only for the page shown.
    page = [_hit(r, fused[r.id], terms) for r in rows[offset : offset + limit]]
    return Results(len(rows), page, semantic_ok)


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
    db: AsyncSession, url: str, vector: np.ndarray | None, pool: int
) -> tuple[list[tuple[int, float]], bool]:
    if vector is None:
        return [], False
    if vector.size == 0:  # nothing to look for
        return [], True
    vectors = store_for(url)
    await vectors.refresh(db)
    found = await asyncio.to_thread(vectors.index.search, vector, pool)
    return found, True


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
    slug: str = ""
    title: str = ""
    started_at: datetime | None = None
    listeners: int = 0


async def _hydrate(db: AsyncSession, ids: list[int], filters: Filters) -> list[Row]:
    """The candidates that may be shown: two small queries, each driven by primary keys (one
    joined query let SQLite start from the published conversations and scan their passages)."""
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


def _hit(r: Row, score: float, terms: list[str]) -> Hit:
    start = moment_ms(r.text, r.start_ms, r.end_ms, terms)
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
        html=highlight(r.text, terms),
        url=url,
        language=r.language,
        listeners=r.listeners,
        score=round(score, 6),
        snippet_slug=r.snippet_slug,
        snippet_title=r.snippet_title,
    )


def _matches(word: str, term: str) -> bool:
    """Same word, or the same stem roughly (rivers ~ river, funding ~ fund)."""
    if word == term:
        return True
    if len(term) < 4 or len(word) < 4:
        return False
    stem = term[: max(4, len(term) - 2)]
    return word.startswith(stem) or term.startswith(word[: max(4, len(word) - 2)])


_SENTENCE_END = re.compile(r"(?<=[.?!…])\s+")
_TOKEN = re.compile(r"[^\W_]+")


def moment_ms(text: str, start_ms: int, end_ms: int, terms: list[str]) -> int:
    """When, within the passage, the sentence that matches the query best begins.

    Passages keep only their first and last word times, so a sentence's start is placed by its
    first word's position in the passage (words are spoken at an even pace within 20 s, so this
    lands within a second or two). Ties and no overlap give the passage's start.
    """
    content = [t for t in terms if t not in keyword.STOPWORDS] or terms
    sentences = _SENTENCE_END.split(text)
    if len(sentences) < 2 or not content:
        return start_ms
    total = len(_TOKEN.findall(text)) or 1
    best, best_at, seen = 0, 0, 0
    for sentence in sentences:
        tokens = [t.lower() for t in _TOKEN.findall(sentence)]
        overlap = sum(1 for t in content if any(_matches(w, t) for w in tokens))
        if overlap > best:
            best, best_at = overlap, seen
        seen += len(tokens)
    return start_ms + (end_ms - start_ms) * best_at // total


def highlight(text: str, terms: list[str]) -> Markup:
    """The text, escaped, with the words that match the query wrapped in <mark>. Every piece
    of the stored text goes through escape() (Markup.format escapes its argument too)."""
    content = [t for t in terms if t not in keyword.STOPWORDS] or terms
    out: list[Markup] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        if any(_matches(m.group(0).lower(), t) for t in content):
            out.append(escape(text[pos : m.start()]))
            out.append(Markup("<mark>{}</mark>").format(m.group(0)))
            pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)
