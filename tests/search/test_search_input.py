"""Odd input to the search API and page: clear 4xx (or an honest empty answer), never a
syntax error or a 500, and nothing changes."""

from __future__ import annotations

import sqlite3

import pytest
from search_support import fresh_vectors, indexed_talk
from sqlalchemy import func, select
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.search import keyword
from junto.storage.tables import SearchPassage

ODD = [
    '"', '""', "'", "*", "-", "--", ":", "::", "(", ")", "()", "NEAR", "NEAR(a b)", "a NEAR/2 b",
    "AND", "OR OR", "NOT", "^", "river*", "-river", "text:river", '"river', "river\"'",
    "🦆🌊", "rivers 🌊 cities", "'; DROP TABLE search_passages; --", "1=1 OR 1",
    "<script>alert(1)</script>", "%", "_", "\\", "{col}", "a & b | !c", "rivers:* & cities",
    "Ünïcödé façade", "中文 搜索", "\u200b", "x" * 500,
]  # fmt: skip


def test_every_odd_query_is_a_valid_fts5_expression() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61')")
    db.execute("INSERT INTO t(text) VALUES ('rivers and cities, facade and drop table')")
    for query in [*ODD, "x" * 10_000]:
        # The node matches each word alone, all of them (AND) and any of them (OR).
        found = keyword.terms(query)
        for expr in (
            keyword.fts5_expression(query),
            keyword.fts5_expression(query, "AND"),
            *(keyword.fts5_join([w]) for w in found),
        ):
            if expr is not None:
                db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank", (expr,)).fetchall()
    assert keyword.fts5_expression("*:()") is None


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_vectors()


async def test_odd_input_gets_clear_answers_and_changes_nothing(world: World) -> None:
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    await indexed_talk(world, ana, ben)
    reader = world.anonymous().client

    async def passages() -> int:
        async with world.node.db() as db:
            return int(await db.scalar(select(func.count()).select_from(SearchPassage)) or 0)

    before = await passages()
    for query in ODD:
        answer = await reader.get("/api/search", params={"q": query})
        assert answer.status_code in (200, 400), (query, answer.text)
        if answer.status_code == 400:
            assert answer.json()["error"] == "empty_query", query
    found = (await reader.get("/api/search", params={"q": "rivers 🌊 (cities)*"})).json()
    assert found["total"] > 0

    too_long = await reader.get("/api/search", params={"q": "river " * 2000})
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "query_too_long"
    assert "at most 500" in too_long.json()["message"]
    unknown = await reader.get("/api/search", params={"q": "river", "colour": "red"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_parameter"
    assert "colour" in unknown.json()["message"]
    control = await reader.get("/api/search", params={"q": "river", "speaker": "a\x00b"})
    assert control.status_code == 400 and control.json()["error"] == "bad_characters"
    for params in ({"q": "river", "sort": "loudest"}, {"q": "river", "from": "yesterday"},
                   {"q": "river", "limit": "0"}, {"q": "river", "offset": "-1"}):  # fmt: skip
        answer = await reader.get("/api/search", params=params)
        assert answer.status_code == 422, params
        assert answer.json()["detail"]  # FastAPI's validation list, as every API here
    empty = await reader.get("/api/search", params={"q": "  "})
    assert empty.status_code == 400 and "Type a word" in empty.json()["message"]

    # The page shows the same messages, escaped.
    page = await reader.get("/search", params={"q": "<b>river</b> " * 100})
    assert page.status_code == 400
    assert "at most 500" in page.text and "<b>river</b>" not in page.text
    page = await reader.get("/search", params={"q": "river", "from": "someday"})
    assert page.status_code == 400 and "must be a date" in page.text
    page = await reader.get("/search", params={"q": "<b>river</b>"})
    assert page.status_code == 200 and "<b>river</b>" not in page.text
    assert "&lt;b&gt;" in page.text
    # Paging keeps the other parameters (and escapes them in the links).
    page = await reader.get("/search", params={"q": "river <i>", "offset": "20"})
    assert page.status_code == 200 and 'rel="prev"' in page.text
    assert "q=river+%3Ci%3E" in page.text and "offset=0" in page.text
    assert await passages() == before
