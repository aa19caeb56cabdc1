"""The search page, `GET /search`: a plain form and its results, rendered on the server.

It works without JavaScript (the form is a GET), so results are links people can share. The
same checks as the API apply; a bad query renders the page with the message (status 400).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from junto.search.query import Filters, Results, Sort, search
from junto.search.vectorstore import node_store
from junto.web.deps import DbDep, NodeDep
from junto.web.render import render
from junto.web.search_api import MAX_LIMIT, MAX_OFFSET, bad, check
from junto.web.security import ApiError

router = APIRouter(include_in_schema=False)

SORTS: dict[str, str] = {
    "relevance": "Best match",
    "recency": "Newest first",
    "listeners": "Most listeners",
}
PAGE = 20


def _date(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise bad("bad_date", f"{name} must be a date like 2026-11-27.") from None


def _int(value: str | None, default: int, high: int) -> int:
    try:
        return min(max(int(value or default), 0), high)
    except ValueError:
        return default


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, db: DbDep, node: NodeDep) -> HTMLResponse:
    p = request.query_params
    form: dict[str, Any] = {k: p.get(k, "") for k in ("q", "speaker", "topic", "from", "to",
                                                      "language", "sort")}  # fmt: skip
    results: Results | None = None
    error: str | None = None
    status = 200
    offset = _int(p.get("offset"), 0, MAX_OFFSET)
    if any(v for v in form.values()):
        try:
            text, base = check(list(p.keys()), form["q"], form["speaker"] or None,
                               form["topic"] or None, form["language"] or None)  # fmt: skip
            filters = Filters(base.speaker, base.topic, _date("From", form["from"]),
                              _date("To", form["to"]), base.language)  # fmt: skip
            sort: Sort = form["sort"] if form["sort"] in SORTS else "relevance"  # type: ignore[assignment]
            results = await search(
                db, node_store(node.settings), text, filters, sort, min(PAGE, MAX_LIMIT), offset
            )
        except ApiError as exc:
            error, status = exc.message, exc.status
    more = results is not None and results.total > offset + PAGE
    return render(request, "search.html", status_code=status, form=form, results=results,
                  error=error, sorts=SORTS, offset=offset, page=PAGE, more=more)  # fmt: skip
