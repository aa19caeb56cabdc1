"""The lobby page and the listing API behind it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from conv_support import world_fixture  # noqa: F401 - fixture

from helpers import World

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def card(html: str, slug: str) -> str:
    match = re.search(rf'<li class="conv-card" data-slug="{slug}".*?</li>', html, re.S)
    assert match, f"no card for {slug}"
    return match.group(0)


async def test_empty_lobby_says_so_and_invites_members_to_create(world: World) -> None:
    anonymous = world.anonymous()
    page = await anonymous.client.get("/")
    assert page.status_code == 200
    assert "The lobby is empty" in page.text
    assert 'href="/signin?next=%2Fconversations%2Fnew"' in page.text

    ana = await world.member("ana")
    page = await ana.client.get("/")
    assert "The lobby is empty" in page.text
    assert '<a class="button" href="/conversations/new">Start a conversation</a>' in page.text


async def test_lobby_shows_live_upcoming_and_recently_published(world: World) -> None:
    ana = await world.member("ana")
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    later = soon + timedelta(days=1)
    live = (await ana.create(title="Happening", tags=["now"]))["slug"]
    await ana.post(f"/api/conversations/{live}/start")
    second = (await ana.create(title="Day after", scheduled_at=later.isoformat()))["slug"]
    first = (await ana.create(title="Tomorrow", scheduled_at=soon.isoformat()))["slug"]
    undated = (await ana.create(title="Someday"))["slug"]
    done = (await ana.create(title="Finished"))["slug"]
    await ana.post(f"/api/conversations/{done}/start")
    await ana.post(f"/api/conversations/{done}/end")
    under_review = (await ana.create(title="Under review"))["slug"]
    await ana.post(f"/api/conversations/{under_review}/start")
    await ana.post(f"/api/conversations/{under_review}/end")
    await ana.post(f"/api/conversations/{done}/publish")

    html = (await world.anonymous().client.get("/")).text

    assert "The lobby is empty" not in html
    live_card = card(html, live)
    assert '<span class="badge live">LIVE</span>' in live_card
    assert f'<a href="/c/{live}">Happening</a>' in live_card
    assert re.search(r'data-count="present">\d+</span> present', live_card)
    assert re.search(r'data-count="on_stage">\d+</span> on stage', live_card)
    assert "<li>#now</li>" in live_card
    tomorrow = card(html, first)
    iso = soon.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert f'<time datetime="{iso}" data-local>' in tomorrow
    assert soon.strftime("%H:%M UTC") in tomorrow  # readable without JavaScript
    assert "Time not set yet" in card(html, undated)
    # Upcoming: soonest first, undated last. Ended ones have their own section.
    assert html.index(first) < html.index(second) < html.index(undated)
    published_section = html[html.index("Recently published") :]
    assert f'href="/c/{done}"' in published_section
    assert under_review not in html  # ended, not yet published: only its hosts see it
    assert f'data-slug="{done}"' not in html  # not among the live/upcoming cards JS manages
    assert '<script type="module" src="/static/js/lobby.js"></script>' in html


async def test_hostile_titles_and_tags_are_shown_as_text(world: World) -> None:
    ana = await world.member("ana")
    slug = (await ana.create(title=HOSTILE, tags=["ok"]))["slug"]
    await ana.post(f"/api/conversations/{slug}/start")
    # Tags cannot carry markup at all: normalisation refuses it.
    refused = await ana.post("/api/conversations", {"title": "t", "tags": ["<b>x</b>"]})
    assert refused.status_code == 422

    html = (await world.anonymous().client.get("/")).text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    )
    edit = (await ana.client.get(f"/c/{slug}/edit")).text
    assert "<script>alert" not in edit and "&lt;script&gt;" in edit


async def test_listing_api_pages_filters_and_orders(world: World) -> None:
    ana = await world.member("ana")
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    slugs = []
    for i in range(5):
        when = (base + timedelta(hours=5 - i)).isoformat()
        tags = ["even"] if i % 2 == 0 else ["odd"]
        slugs.append((await ana.create(title=f"C{i}", scheduled_at=when, tags=tags))["slug"])
    anonymous = world.anonymous().client

    seen: list[str] = []
    url = "/api/conversations?state=scheduled&limit=2"
    while url:
        page = (await anonymous.get(url)).json()
        assert len(page["conversations"]) <= 2
        seen += [c["title"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        url = f"/api/conversations?state=scheduled&limit=2&cursor={cursor}" if cursor else ""
    assert seen == ["C4", "C3", "C2", "C1", "C0"]  # soonest first, each exactly once

    even = (await anonymous.get("/api/conversations?tag=EVEN")).json()["conversations"]
    assert sorted(c["title"] for c in even) == ["C0", "C2", "C4"]
    assert (await anonymous.get("/api/conversations?state=live")).json()["conversations"] == []
    await ana.post(f"/api/conversations/{slugs[1]}/start")
    (live,) = (await anonymous.get("/api/conversations?state=live")).json()["conversations"]
    assert live["title"] == "C1" and live["present"] >= 0 and live["on_stage"] >= 0
