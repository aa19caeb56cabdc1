"""Keyword search: SQLite FTS5 (bm25) or PostgreSQL full text (ts_rank_cd), one interface.

People type free text. Nothing they type reaches the query parser as syntax: the query is cut
into words here (letters and digits only) and a MATCH / tsquery expression is built from those
words, each quoted, joined by OR, so quotes, `*`, `-`, `:`, parentheses, NEAR, emoji or SQL
fragments are just characters that are not words.
"""

from __future__ import annotations

import math
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_QUERY_CHARS = 500
MAX_TERMS = 24
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Words so common they would match most passages (and make OR queries slow) and say nothing.
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have i in is it its of on or so that the "
    "their them they this to was we were what when where which who will with you your".split()
)


def words(query: str) -> list[str]:
    """The query's words, lower case, in order, without repeats."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(query[:MAX_QUERY_CHARS].lower()):
        if len(w) <= 40:
            seen.setdefault(w, None)
    return list(seen)


def terms(query: str) -> list[str]:
    """The words worth matching: stopwords dropped unless nothing else is left."""
    all_words = words(query)
    content = [w for w in all_words if w not in STOPWORDS]
    return (content or all_words)[:MAX_TERMS]


def fts5_expression(query: str) -> str | None:
    """A safe FTS5 MATCH expression (None if the query has no words)."""
    found = terms(query)
    # Each term is a quoted string: FTS5 reads it as a phrase of the tokens inside, never as
    # an operator. The words hold only letters and digits, so no quote can end it early.
    return " OR ".join(f'"{w}"' for w in found) if found else None


def tsquery_text(query: str) -> str | None:
    """Text for websearch_to_tsquery: the words joined by `or` (any word may match)."""
    found = [w for w in terms(query) if w != "or"]
    return " or ".join(found) if found else None


# bm25() reads the whole doclist of every query word to count the passages that hold it (its
# IDF), about 0.1-1 us per entry: over millions of passages a common word costs tens of ms and an
# OR of a few a hundred. So bm25 ranks only when every word is in at most RANK_CAP passages;
# otherwise the newest RANK_CAP matches of each word and of all words together (rowid order,
# ~0.2 us a row) are scored here: a passage gets, per word it holds, a weight that is larger
# for rarer words, plus a bonus for holding them all; ties go to the newest. The semantic side
# still covers the whole archive.
RANK_CAP = 3_000


async def candidates(db: AsyncSession, query: str, limit: int) -> list[tuple[int, float]]:
    """(passage id, score) best first: passages with every word, then those with some."""
    found = terms(query)
    if not found:
        return []
    if db.get_bind().dialect.name == "postgresql":
        return await _postgres(db, found, limit)
    return await _sqlite(db, found, limit)


async def _sqlite(db: AsyncSession, found: list[str], limit: int) -> list[tuple[int, float]]:
    quoted = [f'"{w}"' for w in found]
    newest = {q: await _newest(db, q) for q in quoted}
    if any(len(ids) > RANK_CAP for ids in newest.values()):
        return await _capped(db, quoted, newest, limit)
    out: dict[int, float] = {}
    if len(quoted) > 1:
        out.update(await _bm25(db, " AND ".join(quoted), limit))
    if len(out) < limit:
        for pid, score in await _bm25(db, " OR ".join(quoted), limit):
            out.setdefault(pid, score)
    return list(out.items())[:limit]


async def _newest(db: AsyncSession, expr: str) -> list[int]:
    rows = await db.execute(
        text("SELECT rowid FROM search_fts WHERE search_fts MATCH :q ORDER BY rowid DESC LIMIT :n"),
        {"q": expr, "n": RANK_CAP + 1},
    )
    return [int(r) for (r,) in rows]


async def _capped(
    db: AsyncSession, quoted: list[str], newest: dict[str, list[int]], limit: int
) -> list[tuple[int, float]]:
    score: dict[int, float] = {}
    total = 0.0
    for ids in newest.values():
        weight = 1.0 + math.log((RANK_CAP + 1) / max(1, len(ids)))
        total += weight
        for pid in ids[:RANK_CAP]:
            score[pid] = score.get(pid, 0.0) + weight
    if len(quoted) > 1:
        for pid in (await _newest(db, " AND ".join(quoted)))[:RANK_CAP]:
            score[pid] = 2 * total
    best = sorted(score.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    return best[:limit]


async def _bm25(db: AsyncSession, expr: str, limit: int) -> list[tuple[int, float]]:
    rows = await db.execute(
        text(
            "SELECT rowid, bm25(search_fts) FROM search_fts WHERE search_fts MATCH :q "
            "ORDER BY rank LIMIT :n"
        ),
        {"q": expr, "n": limit},
    )
    # bm25() is lower-is-better (negative); flip it so larger is better everywhere.
    return [(int(i), -float(s)) for i, s in rows]


async def _postgres(db: AsyncSession, found: list[str], limit: int) -> list[tuple[int, float]]:
    out: dict[int, float] = {}
    words_ = [w for w in found if w != "or"] or found
    for q in (" ".join(words_), " or ".join(words_)):  # every word, then any word
        rows = await db.execute(
            text(
                "SELECT id, ts_rank_cd(tsv, websearch_to_tsquery('english', :q)) "
                "+ ts_rank_cd(tsv, websearch_to_tsquery('simple', :q)) AS score "
                "FROM search_passages WHERE tsv @@ websearch_to_tsquery('english', :q) "
                "OR tsv @@ websearch_to_tsquery('simple', :q) ORDER BY score DESC LIMIT :n"
            ),
            {"q": q, "n": limit},
        )
        for i, s in rows:
            out.setdefault(int(i), float(s))
        if len(out) >= limit or len(words_) == 1:
            break
    return list(out.items())[:limit]
