"""The conversation page once ended: knowledge, the word-timed transcript, backchannel replay,
downloads, link-preview tags, exports (SRT, JSON, text) and the thumbnail, with hostile text."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "transcripts"))
from published_support import add_posts, add_video, transcribed
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.config import Settings
from junto.knowledge import store as knowledge_store
from junto.knowledge.model import ActionItem, Chapter, Knowledge, Moment, Topic

HOSTILE = "<img src=x onerror=alert(1)>"


def knowledge(host_id: int, guest_id: int) -> Knowledge:
    return Knowledge(
        backend="offline",
        model="test",
        computed_at=datetime.now(UTC),
        summary=[
            Moment(text="Today we talk about rivers and cities.", start_ms=1600, end_ms=4000),
            Moment(text=f"Houseboats {HOSTILE} on the canal.", start_ms=9000, end_ms=12000),
        ],
        chapters=[
            Chapter(title="Rivers", start_ms=0, end_ms=9000, summary="Why rivers matter."),
            Chapter(title=f"Boats {HOSTILE}", start_ms=9000, end_ms=12000),
        ],
        key_points=[Moment(text="Cities face their rivers again.", start_ms=2000, end_ms=4000)],
        questions=[Moment(text="What about the houseboat?", start_ms=9000, end_ms=11000)],
        decisions=[Moment(text="We will visit the canal.", start_ms=9500, end_ms=11000)],
        action_items=[
            ActionItem(
                text="Book the boat.", start_ms=10000, end_ms=11000, owner_id=guest_id, owner=None
            )
        ],
        topics=[Topic(label="rivers", score=0.9), Topic(label="houseboats", score=0.5)],
    )


async def test_the_page_shows_knowledge_transcript_replay_and_tags(
    world: World, settings: Settings
) -> None:
    ana = await world.member("ana_host", "Ana Host")
    ben = await world.member("ben_guest", f"Ben {HOSTILE}")
    conv = await transcribed(
        world, ana, ben, visibility="public", description=f"About rivers {HOSTILE}"
    )
    video = await add_video(settings.data_dir, world, conv)
    await add_posts(
        world,
        conv,
        [(ben.id, 2500, f"Great point {HOSTILE}"), (ana.id, 7000, "Thanks!")],
        deleted="this was deleted",
    )
    async with world.node.db() as db:
        await knowledge_store.save(db, conv.id, knowledge(ana.id, ben.id), None, None)
        await db.commit()
    assert (await ana.post(f"/api/conversations/{conv.slug}/publish")).status_code == 200

    reader = world.anonymous()
    page = await reader.client.get(f"/c/{conv.slug}")
    assert page.status_code == 200
    html = page.text
    if os.environ.get("JUNTO_PAGE_DUMP"):  # to look at the page with its knowledge in a browser
        Path(os.environ["JUNTO_PAGE_DUMP"]).write_text(html)
    # Nothing users wrote is markup.
    assert HOSTILE not in html and "<script>alert(1)" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html

    # Knowledge: summary sentences and chapters link to their moments.
    summary = html[html.index('id="summary"') :]
    assert "Today we talk about rivers and cities." in summary
    assert 'href="?t=1.6"' in summary
    chapters = re.findall(r'<li data-start="(\d+)" data-end="(\d+)"><a href="\?t=(\d+)"', html)
    assert chapters == [("0", "9000", "0"), ("9000", "12000", "9")]
    for heading in ("Key points", "Questions raised", "Decisions", "Action items"):
        assert f">{heading}</h2>" in html
    assert "Owner: Ben &lt;img" in html
    assert ">rivers</span>" in html  # topics

    # The transcript's DOM contract: segments and words with their times on the timeline.
    assert '<div id="transcript"' in html and f'data-slug="{conv.slug}"' in html
    segs = re.findall(
        r'<p class="seg" data-start="(\d+)" data-end="(\d+)" data-speaker="(\d+)"', html
    )
    assert [(int(s), int(sp)) for s, _e, sp in segs] == [
        (0, ana.id),
        (5000, ben.id),
        (9000, ana.id),
    ]
    words = re.findall(r'<span class="w" data-start="(\d+)" data-end="(\d+)">([^<]*)</span>', html)
    assert words[0] == ("0", "350", "Welcome")
    assert ("5000", "5350", "Thank") in words
    assert "houseboat" in [w for _s, _e, w in words]

    # Player, captions, the snippet maker's mount point.
    assert '<video id="player"' in html
    assert f'src="/c/{conv.slug}/transcript.vtt"' in html and 'kind="captions"' in html
    assert (
        '<div id="snippet-maker" data-can-create="false"></div>' in html
        and "/static/js/snippet-maker.js" in html
    )

    # Backchannel replay: in time order, deleted posts left out.
    posts = re.findall(r'<li class="bc-post" data-at="(\d+)">', html)
    assert posts == ["2500", "7000"] and "this was deleted" not in html

    # Link previews.
    url = f"http://testserver/c/{conv.slug}"
    assert '<meta property="og:type" content="video.other">' in html
    assert f'<meta property="og:url" content="{url}">' in html
    assert '<meta property="og:title" content="Rivers and cities">' in html
    assert '<meta property="og:description" content="Today we talk about rivers' in html
    assert f'<meta property="og:image" content="{url}/thumbnail.jpg">' in html
    assert f'<meta property="og:video" content="{url}/media/composite">' in html
    assert '<meta name="twitter:card" content="summary_large_image">' in html

    # Downloads: video with its size, four transcript formats; no raw recordings for readers.
    for ext in ("vtt", "srt", "json", "txt"):
        assert f'href="/c/{conv.slug}/transcript.{ext}"' in html
    assert re.search(r"Video \(MP4\)</a> <span class=\"muted\">[\d.]+ (kB|MB)<", html)
    assert "/recordings/" not in html
    host_page = (await ana.client.get(f"/c/{conv.slug}")).text
    assert "/recordings/" in host_page and "Unpublish" in host_page

    # ?t= starts the player there even without scripts (a media fragment).
    assert (
        f'/c/{conv.slug}/media/composite#t=9.5"'
        in (await reader.client.get(f"/c/{conv.slug}?t=9.5")).text
    )

    for given, seconds in (("1:30", "90.0"), ("1m30s", "90.0"), ("nonsense", None)):
        html = (await reader.client.get(f"/c/{conv.slug}?t={given}")).text
        fragment = f"/c/{conv.slug}/media/composite#t={seconds}" if seconds else "#t="
        assert (fragment in html) == bool(seconds), given

    # The preview image: rendered once by ffmpeg, then served from the data dir.
    thumb = await reader.client.get(f"/c/{conv.slug}/thumbnail.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    cached = settings.data_dir / "recordings" / str(conv.id) / "thumbnail.jpg"
    assert cached.is_file()
    before = cached.stat().st_mtime_ns
    assert (await reader.client.get(f"/c/{conv.slug}/thumbnail.jpg")).content == thumb.content
    assert cached.stat().st_mtime_ns == before

    # Compression: the public gets gzip (httpx decodes it: the page reads the same); signed-in
    # people do not (BREACH, junto.web.compression); media is never compressed, whole or ranged.
    gz = await reader.client.get(f"/c/{conv.slug}", headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip" and 'id="transcript"' in gz.text
    assert int(gz.headers["content-length"]) < len(gz.content) / 2
    plain = await ana.client.get(f"/c/{conv.slug}", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers and 'id="transcript"' in plain.text
    video_url = f"/c/{conv.slug}/media/composite"
    for headers in ({"Accept-Encoding": "gzip"}, {"Accept-Encoding": "gzip", "Range": "bytes=5-"}):
        media = await reader.client.get(video_url, headers=headers)
        assert media.status_code in (200, 206) and "content-encoding" not in media.headers
        assert media.content == video.read_bytes()[5 if "Range" in headers else 0 :]


async def test_exports_parse(world: World) -> None:
    ana = await world.member("ana_host", "Ana Host")
    ben = await world.member("ben_guest", "Ben Guest")
    conv = await transcribed(world, ana, ben, visibility="public")
    client = ana.client

    srt = await client.get(f"/c/{conv.slug}/transcript.srt")
    assert srt.status_code == 200 and srt.headers["content-type"].startswith("application/x-subrip")
    cues = srt.text.strip().split("\n\n")
    assert len(cues) == 3
    number, timing, text = cues[1].split("\n")
    assert number == "2"
    assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", timing)
    assert timing.startswith("00:00:05,000 --> ")
    assert text == "Ben Guest: Thank you for having me <script>alert(1)</script> here."

    vtt = await client.get(f"/c/{conv.slug}/transcript.vtt")
    assert vtt.text.startswith("WEBVTT")
    assert re.search(r"^00:00:05\.000 --> \d\d:\d\d:\d\d\.\d{3}$", vtt.text, re.M)

    document = (await client.get(f"/c/{conv.slug}/transcript.json")).json()
    assert document["version"] == 1 and document["conversation"]["slug"] == conv.slug
    assert {s["name"] for s in document["speakers"]} == {"Ana Host", "Ben Guest"}
    first = document["segments"][0]
    assert set(first) == {"start_ms", "end_ms", "speaker", "text", "words"}
    assert first["speaker"] == {"id": ana.id, "name": "Ana Host"}
    assert first["words"][0] == {"start_ms": 0, "end_ms": 350, "text": "Welcome", "joins": False}
    assert all(w["start_ms"] <= w["end_ms"] for s in document["segments"] for w in s["words"])

    text = (await client.get(f"/c/{conv.slug}/transcript.txt")).text
    lines = [line for line in text.splitlines() if line]
    assert lines[0] == "Rivers and cities"
    assert (
        lines[2] == "[00:00:05] Ben Guest: Thank you for having me <script>alert(1)</script> here."
    )

    missing = await client.get(f"/c/{conv.slug}/transcript.doc")
    assert missing.status_code == 404
    other = await ana.post("/api/conversations", {"title": "No words"})
    none = await client.get(f"/c/{other.json()['slug']}/transcript.srt")
    assert none.status_code == 404 and json.loads(none.text)["error"] == "not_found"
