"""Hybrid search over a real database: keywords, paraphrases, filters, sorts, visibility,
snippets."""

from __future__ import annotations

import pytest
from knowledge_support import said_at
from search_support import add_snippet, fresh_vectors, indexed_talk, search
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.enums import Role
from junto.search import keyword, query


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_vectors()


def when(line_start: str) -> int:
    """ms at which the line of the talk starting with `line_start` was said."""
    return next(int(at * 1000) for _, at, line in said_at() if line.startswith(line_start))


async def test_search_finds_words_meanings_and_respects_filters(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    reader = world.anonymous()
    conv = await indexed_talk(world, ana, ben, publish=False, tags=["cities"])

    # Not published yet: nothing is found, even by its hosts.
    assert (await search(ana, q="library budget"))["total"] == 0
    assert (await ana.post(f"/api/conversations/{conv.slug}/publish")).status_code == 200

    # Keywords: the passage with both words comes first, marked, linked at its moment.
    found = await search(reader, q="budget for books")
    top = found["results"][0]
    assert top["text"].startswith("The budget for books and buildings")
    assert top["speaker"] == "Ben Speaker" and top["conversation"] == conv.slug
    assert "<mark>budget</mark>" in top["html"] and "<mark>books</mark>" in top["html"]
    assert abs(top["start_ms"] - when("The budget for books")) <= 3000
    assert top["url"] == f"/c/{conv.slug}?t={top['start_ms'] // 1000}"

    # A paraphrase sharing no content word with what was said.
    para = await search(reader, q="aquatic animals returned after a decade")
    assert para["semantic"] is True
    top = para["results"][0]
    assert top["text"].startswith("Fish came back within ten years"), para["results"][:3]
    assert abs(top["start_ms"] - when("Fish came back")) <= 3000

    # The moment is the sentence that matches best within a passage.
    bridges = (await search(reader, q="bridges came later"))["results"][0]
    assert bridges["text"].startswith("Rivers brought trade")
    assert abs(bridges["start_ms"] - when("Rivers brought trade") - 14 * 400) <= 3000

    # Over a big archive common words are scored without bm25 (keyword.RANK_CAP): passages
    # holding every word still come first.
    monkeypatch.setattr(keyword, "RANK_CAP", 2)
    capped = (await search(reader, q="budget for books"))["results"][0]
    assert capped["text"].startswith("The budget for books and buildings")
    monkeypatch.undo()

    # Filters: speaker by name or id, topic (tag), dates, language.
    by_ben = await search(reader, q="library river money", speaker="ben speaker")
    assert by_ben["total"] > 0 and {h["speaker"] for h in by_ben["results"]} == {"Ben Speaker"}
    by_ana = await search(reader, q="library river money", speaker=str(ana.id))
    assert by_ana["total"] > 0 and {h["speaker"] for h in by_ana["results"]} == {"Ana Host"}
    assert (await search(reader, q="library", topic="cities"))["total"] > 0
    assert (await search(reader, q="library", topic="gardening"))["total"] == 0
    assert conv.started_at is not None
    day = conv.started_at.date()
    assert (await search(reader, q="library", **{"from": str(day), "to": str(day)}))["total"] > 0
    assert (await search(reader, q="library", to="2001-01-01"))["total"] == 0
    assert (await search(reader, q="library", language="en"))["total"] > 0
    assert (await search(reader, q="library", language="de"))["total"] == 0

    # A filter looks through a wider pool of candidates than an unfiltered search, so a speaker
    # who is not among the best few overall is still found.
    monkeypatch.setattr(query, "CANDIDATES", 1)
    monkeypatch.setattr(query, "FILTERED_CANDIDATES", 50)
    few = await search(reader, q="library river money")
    assert 1 <= few["total"] <= 2  # one keyword and one semantic candidate
    for name in ("Ana Host", "Ben Speaker"):
        narrowed = await search(reader, q="library river money", speaker=name)
        shown = sum(1 for h in few["results"] if h["speaker"] == name)
        assert narrowed["total"] >= shown + 2, (name, narrowed["total"], shown)
        assert {h["speaker"] for h in narrowed["results"]} == {name}
    monkeypatch.undo()

    # A second, private conversation never appears; a third with more people wins "listeners".
    cara = await world.member("cara", "Cara Host")
    hidden = await indexed_talk(world, cara, ben, visibility="invite_only", title="Secret rivers")
    popular = await indexed_talk(world, cara, ana, title="Popular rivers")
    for n in range(3):
        extra = await world.member(f"guest{n}")
        await world.add_participant(popular, extra, Role.AUDIENCE)
    found = await search(reader, q="fish came back", sort="listeners", limit=50)
    slugs = [h["conversation"] for h in found["results"]]
    assert hidden.slug not in slugs
    assert slugs[0] == popular.slug and conv.slug in slugs
    recent = await search(reader, q="fish came back", sort="recency", limit=50)
    assert recent["results"][0]["conversation"] == popular.slug

    # A snippet is found by its title, and links to its own page.
    snippet = await add_snippet(world, conv, ana, "Swimming in summer", when("Now we have"),
                                when("Now we have") + 5000,
                                "Now we have gardens beside the river.")  # fmt: skip
    found = await search(reader, q="swimming summer")
    hits = [h for h in found["results"][:3] if h["snippet"] == snippet.slug]
    assert hits, [(h["text"], h["score"], h["snippet"]) for h in found["results"][:5]]
    hit = hits[0]
    assert hit["url"] == f"/s/{snippet.slug}" and hit["snippet_title"] == "Swimming in summer"

    # The page renders the same results, escaped and marked, without JavaScript.
    page = await reader.client.get("/search", params={"q": "budget for books"})
    assert page.status_code == 200
    assert "<mark>budget</mark>" in page.text and f'href="/c/{conv.slug}?t=' in page.text
    assert "moments found" in page.text
    none = await reader.client.get("/search", params={"q": "zebra xylophone quantum"})
    assert "Nothing matched" in none.text or "moments found" in none.text
