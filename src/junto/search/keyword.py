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
# Words that say nothing about what a passage is about, so they never decide a ranking or get
# marked (issue 13: "should" won the keyword ranking): PostgreSQL's english list (Snowball's,
# tsearch_data/english.stop, which its 'english' config drops anyway), the modal verbs it lacks
# and the fillers of speech that Whisper writes down. A query of nothing else keeps them (FTS5
# indexes every word; an English passage's tsvector holds no stop words, so on PostgreSQL such a
# query finds English passages by meaning only).
STOPWORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing a an
    the and but if or because as until while of at by for with about against between into through
    during before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now
    would could shall might must ll ve re d m um uh er erm ah oh okay ok yeah hmm mm gonna wanna
    gotta""".split()
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


def fts5_expression(query: str, operator: str = "OR") -> str | None:
    """A safe FTS5 MATCH expression (None if the query has no words)."""
    found = terms(query)
    return fts5_join(found, operator) if found else None


def fts5_join(words: list[str], operator: str = "OR") -> str:
    # Each word is a quoted string: FTS5 reads it as a phrase of the tokens inside, never as
    # an operator. The words hold only letters and digits, so no quote can end it early.
    return f" {operator} ".join(f'"{w}"' for w in words)


def tsquery_text(query: str, every: bool = False) -> str | None:
    """Text for websearch_to_tsquery: the words, all of them or (by default) any of them."""
    found = [w for w in terms(query) if w != "or"]
    return websearch_join(found, every) if found else None


def websearch_join(words: list[str], every: bool) -> str:
    # websearch_to_tsquery: words side by side must all match; `or` between them, any.
    return (" " if every else " or ").join(words)


# bm25() reads the whole doclist of every query word to count the passages that hold it (its
# IDF), about 0.1-1 us per entry: over millions of passages a common word costs tens of ms and an
# OR of a few a hundred. So bm25 ranks only when every word is in at most RANK_CAP passages;
# otherwise the newest RANK_CAP matches of each word and of all words together (rowid order,
# ~0.2 us a row) are scored: a passage gets, per word it holds, a weight that is larger for
# rarer words, plus a bonus for holding them all; ties go to the newest. The semantic side
# still covers the whole archive.
#
# Both steps are single statements that return a handful of rows: the counts, then the best
# `limit`. Fetching the newest ids into Python instead cost ~4 ms per word through the driver
# (3,000 rows each), several times SQLite's own work.
RANK_CAP = 3_000


async def candidates(db: AsyncSession, query: str, limit: int) -> list[tuple[int, float]]:
    """(passage id, score) best first: passages with every word, then those with some."""
    found = terms(query)
    if not found:
        return []
    if db.get_bind().dialect.name == "postgresql":
        return await _postgres(db, found, limit)
    return await _sqlite(db, found, limit)


# The statements below are assembled from fixed text and parameter numbers only (S608 checked by
# hand): every word travels as a bound parameter.
def _match(i: int) -> str:
    return f"SELECT rowid AS id FROM search_fts WHERE search_fts MATCH :t{i}"  # noqa: S608


async def _sqlite(db: AsyncSession, found: list[str], limit: int) -> list[tuple[int, float]]:
    # Each term is bound as a parameter (never spliced into the SQL): a quoted FTS5 phrase.
    params: dict[str, object] = {f"t{i}": fts5_join([w]) for i, w in enumerate(found)}
    if len(found) > 1:
        params[f"t{len(found)}"] = fts5_join(found, "AND")
    counts = await _counts(db, params)
    if any(c > RANK_CAP for c in counts):
        return await _capped(db, params, counts[: len(found)], limit)
    out: dict[int, float] = {}
    if len(found) > 1:
        out.update(await _bm25(db, str(params[f"t{len(found)}"]), limit))
    if len(out) < limit:
        for pid, score in await _bm25(db, fts5_join(found, "OR"), limit):
            out.setdefault(pid, score)
    return list(out.items())[:limit]


async def _counts(db: AsyncSession, params: dict[str, object]) -> list[int]:
    """How many passages match each expression, counting no further than RANK_CAP + 1."""
    parts = [f"(SELECT count(*) FROM ({_match(i)} LIMIT :cap))" for i in range(len(params))]  # noqa: S608
    row = await db.execute(text("SELECT " + ", ".join(parts)), {**params, "cap": RANK_CAP + 1})
    return [int(c) for c in row.one()]


async def _capped(
    db: AsyncSession, params: dict[str, object], counts: list[int], limit: int
) -> list[tuple[int, float]]:
    weights = {f"w{i}": 1.0 + math.log((RANK_CAP + 1) / max(1, c)) for i, c in enumerate(counts)}
    if len(params) > len(counts):  # holding every word outranks any mix of some
        weights[f"w{len(counts)}"] = 2 * sum(weights.values())
    newest = " UNION ALL ".join(
        f"SELECT id, :w{i} AS w FROM ({_match(i)} ORDER BY rowid DESC LIMIT :cap)"  # noqa: S608
        for i in range(len(params))
    )
    rows = await db.execute(
        text(
            f"SELECT id, sum(w) AS score FROM ({newest}) GROUP BY id "  # noqa: S608
            "ORDER BY score DESC, id DESC LIMIT :n"
        ),
        {**params, **weights, "cap": RANK_CAP, "n": limit},
    )
    return [(int(i), float(s)) for i, s in rows]


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
    """Every word, then any word; each ranked by ts_rank_cd among its newest RANK_CAP matches
    (ranking reads each match's tsvector from the table: over every match of a common word
    that cost 150-330 ms at 1,000 hours)."""
    out: dict[int, float] = {}
    words_ = [w for w in found if w != "or"] or found
    for q in (websearch_join(words_, every=True), websearch_join(words_, every=False)):
        rows = await db.execute(
            text(
                "SELECT id, ts_rank_cd(tsv, websearch_to_tsquery('english', :q)) "
                "+ ts_rank_cd(tsv, websearch_to_tsquery('simple', :q)) AS score "
                "FROM (SELECT id, tsv FROM search_passages "
                "WHERE tsv @@ websearch_to_tsquery('english', :q) "
                "OR tsv @@ websearch_to_tsquery('simple', :q) "
                "ORDER BY id DESC LIMIT :cap) AS newest "
                "ORDER BY score DESC, id DESC LIMIT :n"
            ),
            {"q": q, "n": limit, "cap": RANK_CAP},
        )
        for i, s in rows:
            out.setdefault(int(i), float(s))
        if len(out) >= limit or len(words_) == 1:
            break
    return list(out.items())[:limit]
