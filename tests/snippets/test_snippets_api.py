"""Making, reading, showing and deleting snippets through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from knowledge_support import said_at
from snippets_support import STATEMENT, line_range, make_media, snippet_count, snippetable
from sqlalchemy import select
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from helpers import Person
from junto.snippets import MS_PER_LETTER, PAD_MS
from junto.storage.tables import Job, SearchPassage


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from snippets_support import talk_seconds

    return make_media(tmp_path_factory.mktemp("media"), talk_seconds())


async def people(world: World) -> tuple[Person, Person, Person]:
    return (
        await world.member("ana", "Ana"),
        await world.member("ben", "Ben <b>Bold</b>"),
        await world.member("cyd", "Cy"),
    )


async def create(person: Person, slug: str, body: dict[str, Any]) -> Any:
    return await person.post(f"/api/conversations/{slug}/snippets", body)


async def test_a_member_makes_a_snippet_snapped_to_words(
    world: World, media: tuple[Path, Path]
) -> None:
    ana, ben, cy = await people(world)
    conv = await snippetable(world, ana, ben, media)
    start, end, line = line_range(1)  # Ben: "Thank you for having me. ..."
    # A range that starts inside the first word and ends inside the last one.
    answer = await create(cy, conv.slug, {"start_ms": start + 100, "end_ms": end - 100})
    assert answer.status_code == 201, answer.text
    got = answer.json()
    assert got["state"] == "ready", got
    assert got["text"] == line
    # Snapped to the words' edges, padded by at most PAD_MS, never into the neighbours (a
    # word shorter than its spelling allows is first given its length: MS_PER_LETTER).
    first, last = line.split()[0], line.split()[-1]
    assert start - PAD_MS - MS_PER_LETTER * len(first) <= got["start_ms"] <= start
    assert end <= got["end_ms"] <= end + PAD_MS + MS_PER_LETTER * len(last)
    assert [s["name"] for s in got["speakers"]] == ["Ben <b>Bold</b>"]
    assert got["speakers"][0]["consent_statement"] == STATEMENT
    assert got["speakers"][0]["consent_given_at"]
    assert got["title"].startswith("Thank you for having me.")
    assert got["conversation"]["url"].endswith(f"/c/{conv.slug}?t={got['start_ms'] // 1000}")
    assert set(got["files"]) == {"clip", "audio", "thumbnail", "captions"}
    slug = got["slug"]
    folder = world.settings.data_dir / "snippets" / slug
    assert {p.name for p in folder.iterdir()} == {
        "clip.mp4",
        "audio.m4a",
        "thumbnail.jpg",
        "captions.vtt",
    }
    async with world.node.db() as db:
        jobs = (await db.scalars(select(Job).where(Job.kind == "search.index"))).all()
    assert any(f'"snippet_id": {_id(world, slug)}' in j.payload or "snippet_id" in j.payload
               for j in jobs)  # fmt: skip

    # Anyone may read it, watch it and fetch its files (with Range, for players).
    anon = world.anonymous()
    read = await anon.client.get(f"/api/snippets/{slug}")
    assert read.status_code == 200 and read.json()["text"] == line
    part = await anon.client.get(f"/s/{slug}/clip.mp4", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-type"] == "video/mp4"
    vtt = await anon.client.get(f"/s/{slug}/captions.vtt")
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert "00:00:00." in vtt.text and "Thank you" in vtt.text
    for name in ("audio.m4a", "thumbnail.jpg"):
        assert (await anon.client.get(f"/s/{slug}/{name}")).status_code == 200


def _id(world: World, slug: str) -> str:
    return slug  # the payload is checked loosely above; ids differ per database


async def test_pages_oembed_and_framing(world: World, media: tuple[Path, Path]) -> None:
    ana, ben, cy = await people(world)
    conv = await snippetable(world, ana, ben, media, title="Rivers <i>and</i> cities")
    start, end, line = line_range(1)
    title = 'Ben on "home" <script>alert(1)</script>'
    made = await create(cy, conv.slug, {"start_ms": start, "end_ms": end, "title": title})
    assert made.status_code == 201, made.text
    slug, begin = made.json()["slug"], made.json()["start_ms"]
    anon = world.anonymous().client

    page = await anon.get(f"/s/{slug}")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "Ben &lt;b&gt;Bold&lt;/b&gt;" in html
    assert "Recorded with consent given 20" in html
    assert f'href="http://testserver/c/{conv.slug}?t={begin // 1000}"' in html
    assert "Rivers &lt;i&gt;and&lt;/i&gt; cities" in html
    assert f"at {begin // 60000}:{begin // 1000 % 60:02d}" in html
    assert re.search(r'<meta property="og:video" content="[^"]+/clip\.mp4">', html)
    assert re.search(r'<meta property="og:image" content="[^"]+/thumbnail\.jpg">', html)
    assert f'<meta property="og:description" content="{line}">' in html
    assert 'type="application/json+oembed"' in html
    assert f"&lt;iframe src=&#34;http://testserver/s/{slug}/embed&#34;" in html
    assert '<track kind="captions"' in html
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    embed = await anon.get(f"/s/{slug}/embed")
    assert embed.status_code == 200
    assert "x-frame-options" not in embed.headers
    csp = embed.headers["content-security-policy"]
    assert "frame-ancestors *" in csp and "script-src 'self'" in csp
    assert "<video" in embed.text and "Ben &lt;b&gt;Bold&lt;/b&gt;" in embed.text
    assert "<script>alert(1)" not in embed.text
    # Any other page keeps refusing frames.
    other = await anon.get(f"/c/{conv.slug}/transcript")
    assert other.headers["x-frame-options"] == "DENY"

    url = f"http://testserver/s/{slug}"
    oe = await anon.get("/oembed", params={"url": url, "format": "json", "maxwidth": 320})
    assert oe.status_code == 200, oe.text
    data = oe.json()
    assert data["version"] == "1.0" and data["type"] == "video"
    assert data["provider_name"] == "Junto" and data["author_name"] == "Ben <b>Bold</b>"
    assert data["width"] == 320 and data["height"] == 200
    assert data["thumbnail_url"] == f"{url}/thumbnail.jpg"
    assert f'src="{url}/embed"' in data["html"] and 'width="320"' in data["html"]
    assert "&lt;script&gt;" in data["html"]  # the title attribute is escaped
    xml = await anon.get("/oembed", params={"url": url, "format": "xml"})
    assert xml.status_code == 501
    for missing in ("http://testserver/s/nosuchthing", "http://testserver/c/x", "junk"):
        assert (await anon.get("/oembed", params={"url": missing})).status_code == 404
    assert (await anon.get("/s/nosuchthing")).status_code == 404
    assert (await anon.get("/s/nosuchthing/embed")).status_code == 404
    assert (await anon.get(f"/s/{slug}/secret.txt")).status_code == 404


async def test_bad_requests_are_refused_and_store_nothing(
    world: World, media: tuple[Path, Path]
) -> None:
    ana, ben, cy = await people(world)
    conv = await snippetable(world, ana, ben, media)
    no_media = await snippetable(world, ana, ben, None)
    start, end, _ = line_range(1)
    url = f"/api/conversations/{conv.slug}/snippets"
    last_end = round((said_at()[-1][1] + 20) * 1000)
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"start_ms": end, "end_ms": start}, 422, "end_ms"),  # reversed
        ({"start_ms": start, "end_ms": start}, 422, "end_ms"),  # zero length
        ({"start_ms": -1, "end_ms": end}, 422, "start_ms"),  # before 0
        ({"start_ms": start, "end_ms": last_end + 60_000}, 422, "end_ms"),  # after the end
        ({"start_ms": 0, "end_ms": 11 * 60_000}, 422, "end_ms"),  # longer than 10 minutes
        ({"start_ms": start, "end_ms": end, "title": "x" * 201}, 422, "title"),
        ({"start_ms": start, "end_ms": end, "title": "two\nlines"}, 422, "title"),
        ({"start_ms": start, "end_ms": end, "title": "bell\x07"}, 422, "title"),
        ({"start_ms": start, "end_ms": end, "extra": 1}, 422, "extra"),
        ({"start_ms": "soon", "end_ms": end}, 422, "start_ms"),
        ({"end_ms": end}, 422, "start_ms"),
    ]
    for body, status, field in bad:
        answer = await cy.post(url, body)
        assert answer.status_code == status, (body, answer.text)
        assert field in answer.text, (body, answer.text)
    # Silence between two lines: nothing to snap to.
    gap_start = line_range(1)[1] + 400
    silent = await cy.post(url, {"start_ms": gap_start, "end_ms": gap_start + 2000})
    assert silent.status_code == 422 and "nobody speaks" in silent.text
    # No media.
    nothing = await cy.post(
        f"/api/conversations/{no_media.slug}/snippets", {"start_ms": start, "end_ms": end}
    )
    assert nothing.status_code == 409 and nothing.json()["error"] == "no_media"
    # Who: nobody signed in, a guest, a member without the CSRF token, an unknown conversation.
    anon = world.anonymous()
    assert (await anon.post(url, {"start_ms": start, "end_ms": end})).status_code in (401, 403)
    guest_client = world.client()
    from helpers import guest

    await guest(guest_client, "Visitor")
    guest_person = Person(guest_client, {})
    assert (await guest_person.post(url, {"start_ms": start, "end_ms": end})).status_code == 401
    no_token = await cy.client.post(url, json={"start_ms": start, "end_ms": end})
    assert no_token.status_code == 403
    unknown = await cy.post("/api/conversations/nosuch/snippets", {"start_ms": 0, "end_ms": 900})
    assert unknown.status_code == 404
    assert await snippet_count(world) == 0
    assert not (world.settings.data_dir / "snippets").exists()


async def test_review_permissions_and_delete(world: World, media: tuple[Path, Path]) -> None:
    ana, ben, cy = await people(world)
    conv = await snippetable(world, ana, ben, media, publish=False)
    start, end, _ = line_range(0)
    url = f"/api/conversations/{conv.slug}/snippets"
    body = {"start_ms": start, "end_ms": end}
    # Ended, not published: members may not; its host may, and its speaker may see it.
    assert (await cy.post(url, body)).status_code == 403
    hosts = await ana.post(url, body)
    assert hosts.status_code == 201, hosts.text
    host_slug = hosts.json()["slug"]
    assert (await world.anonymous().client.get(f"/s/{host_slug}")).status_code == 404
    assert (await world.anonymous().client.get(f"/s/{host_slug}/clip.mp4")).status_code == 404
    assert (await ben.client.get(f"/s/{host_slug}")).status_code == 200
    assert (await ana.post(f"/api/conversations/{conv.slug}/publish")).status_code == 200

    made = await cy.post(url, body)
    assert made.status_code == 201
    slug = made.json()["slug"]
    folder = world.settings.data_dir / "snippets" / slug
    assert folder.is_dir()
    async with world.node.db() as db:
        # What the search job will write: it must go when the snippet goes.
        db.add(
            SearchPassage(
                conversation_id=conv.id,
                snippet_id=await _snippet_id(db, slug),
                start_ms=start,
                end_ms=end,
                text="welcome",
                language="en",
            )
        )
        await db.commit()
    # Ben is heard in neither; he may not delete Cy's snippet. Cy (creator) and Ana (host) may.
    assert (
        await ben.client.delete(f"/api/snippets/{slug}", headers=await _h(ben))
    ).status_code == 403
    anon = world.anonymous()
    assert (
        await anon.client.delete(f"/api/snippets/{slug}", headers=await _h(anon))
    ).status_code == 401
    gone = await cy.client.delete(f"/api/snippets/{slug}", headers=await _h(cy))
    assert gone.status_code == 204
    assert not folder.exists()
    assert (await anon.client.get(f"/api/snippets/{slug}")).status_code == 404
    async with world.node.db() as db:
        assert (await db.scalars(select(SearchPassage))).all() == []
    by_host = await ana.client.delete(f"/api/snippets/{host_slug}", headers=await _h(ana))
    assert by_host.status_code == 204
    assert await snippet_count(world) == 0


async def _h(person: Person) -> dict[str, str]:
    from helpers import csrf_headers

    return await csrf_headers(person.client)


async def _snippet_id(db: Any, slug: str) -> int:
    from junto.storage.tables import Snippet

    return int(await db.scalar(select(Snippet.id).where(Snippet.slug == slug)))


async def test_a_clip_that_cannot_be_cut_is_kept_as_failed(
    world: World, media: tuple[Path, Path], tmp_path: Path
) -> None:
    ana, ben, cy = await people(world)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "composite.mp4").write_bytes(b"not a video at all" * 100)
    (broken / "audio.m4a").write_bytes(b"not audio either" * 100)
    conv = await snippetable(world, ana, ben, (broken / "composite.mp4", broken / "audio.m4a"))
    start, end, _ = line_range(2)
    answer = await create(cy, conv.slug, {"start_ms": start, "end_ms": end})
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert body["error"] == "render_failed" and "ffmpeg failed" in body["message"]
    assert str(world.settings.data_dir) not in body["message"]
    assert body["snippet"]["state"] == "failed" and body["snippet"]["files"] == {}
    slug = body["snippet"]["slug"]
    assert (await world.anonymous().client.get(f"/s/{slug}/clip.mp4")).status_code == 404
    page = await world.anonymous().client.get(f"/s/{slug}")
    assert "could not be made" in page.text
    # A good one afterwards is listed for the conversation; the failed one is not.
    from junto import snippets

    async with world.node.db() as db:
        assert await snippets.list_for_conversation(db, conv) == []
    # (the conversation's files are garbage, so nothing else can be made from it either)
    good = await snippetable(world, ana, ben, media)
    made = await create(cy, good.slug, {"start_ms": start, "end_ms": end, "title": "Good"})
    assert made.status_code == 201
    async with world.node.db() as db:
        listed = await snippets.list_for_conversation(db, good)
    assert [s.title for s in listed] == ["Good"]
