"""GET /api/search: moments in published public conversations and their snippets.

Every odd input is a 4xx in the node's error shape, never a 500: the query is cut into words by
junto.search.keyword (no user text reaches a query parser as syntax), a query over 500
characters, control characters or an unknown parameter is a 400 that says what is wrong, and
the typed parameters (dates, sort, limit) are FastAPI's 422.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from junto.search import keyword
from junto.search.query import Filters, Results, Sort, search
from junto.search.vectorstore import node_store
from junto.web.conversations_api import _errors
from junto.web.deps import DbDep, NodeDep
from junto.web.security import ApiError

router = APIRouter(prefix="/api", tags=["search"])

PARAMS = frozenset({"q", "speaker", "topic", "from", "to", "language", "sort", "limit", "offset"})
MAX_LIMIT = 50
MAX_OFFSET = 1000


class SearchHitOut(BaseModel):
    conversation: str = Field(description="The conversation's slug.")
    conversation_title: str
    speaker: str | None = Field(description="Who said it (display name), null if unknown.")
    speaker_id: int | None
    start_ms: int = Field(description="When the best-matching sentence begins (ms since live).")
    end_ms: int
    text: str = Field(description="The passage, as plain text.")
    html: str = Field(description="The passage, HTML-escaped, query words in <mark>.")
    url: str = Field(description="/c/{slug}?t={seconds}, or /s/{slug} for a snippet.")
    language: str
    listeners: int = Field(description="How many people took part in the conversation.")
    started_at: str | None
    snippet: str | None = Field(None, description="The snippet's slug if the hit is a snippet.")
    snippet_title: str | None = None
    score: float = Field(
        description="Relevance: half the cosine of meaning, half the share of the query's words "
        "held (a sound-alike counts 0.7); higher first."
    )


class SearchOut(BaseModel):
    query: str
    total: int = Field(description="Moments that match (at most a few hundred are ranked).")
    semantic: bool = Field(description="Whether meaning (not only words) was searched.")
    results: list[SearchHitOut]


def bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _clean(name: str, value: str | None, max_len: int) -> str | None:
    if value is None:
        return None
    if len(value) > max_len:
        raise bad("too_long", f"{name} is too long: at most {max_len} characters, please.")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise bad("bad_characters", f"{name} contains control characters.")
    return value.strip() or None


def check(
    params: list[str], q: str, speaker: str | None, topic: str | None, language: str | None
) -> tuple[str, Filters]:
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise bad(
            "unknown_parameter",
            f"Unknown search parameter: {unknown[0][:40]}. Known: {', '.join(sorted(PARAMS))}.",
        )
    if len(q) > keyword.MAX_QUERY_CHARS:
        raise bad(
            "query_too_long",
            f"The search is {len(q)} characters long; at most {keyword.MAX_QUERY_CHARS}, please.",
        )
    text = _clean("The search", q, keyword.MAX_QUERY_CHARS) or ""
    if not keyword.words(text):
        raise bad("empty_query", "Type a word or two to search for.")
    lang = _clean("language", language, 16)
    if lang and not all(c.isalnum() or c == "-" for c in lang):
        raise bad("bad_language", "language is a code such as en or pt-BR.")
    return text, Filters(
        speaker=_clean("speaker", speaker, 64),
        topic=_clean("topic", topic, 80),
        language=lang,
    )


def hit_json(results: Results) -> list[SearchHitOut]:
    return [
        SearchHitOut(
            conversation=h.conversation_slug,
            conversation_title=h.conversation_title,
            speaker=h.speaker,
            speaker_id=h.speaker_id,
            start_ms=h.start_ms,
            end_ms=h.end_ms,
            text=h.text,
            html=str(h.html),
            url=h.url,
            language=h.language,
            listeners=h.listeners,
            started_at=h.started_at.isoformat() if h.started_at else None,
            snippet=h.snippet_slug,
            snippet_title=h.snippet_title,
            score=h.score,
        )
        for h in results.hits
    ]


@router.get(
    "/search",
    response_model=SearchOut,
    responses=_errors(400),
    summary="Search published conversations and snippets",
)
async def search_api(
    request: Request,
    db: DbDep,
    node: NodeDep,
    q: Annotated[str, Query(description="Free text, at most 500 characters.")] = "",
    speaker: Annotated[str | None, Query(description="A user id or display name.")] = None,
    topic: Annotated[str | None, Query(description="A tag or a topic label.")] = None,
    date_from: Annotated[
        date | None, Query(alias="from", description="Conversations started on or after.")
    ] = None,
    date_to: Annotated[
        date | None, Query(alias="to", description="Conversations started on or before.")
    ] = None,
    language: Annotated[str | None, Query(description="A language code, e.g. en.")] = None,
    sort: Annotated[Literal["relevance", "recency", "listeners"], Query()] = "relevance",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> SearchOut:
    text, filters = check(list(request.query_params.keys()), q, speaker, topic, language)
    filters = Filters(
        speaker=filters.speaker,
        topic=filters.topic,
        language=filters.language,
        date_from=date_from,
        date_to=date_to,
    )
    sort_by: Sort = sort
    results = await search(db, node_store(node.settings), text, filters, sort_by, limit, offset)
    return SearchOut(query=text, total=results.total, semantic=results.semantic,
                     results=hit_json(results))  # fmt: skip
