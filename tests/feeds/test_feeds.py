"""RSS, Atom and podcast feeds: what a feed reader or podcast app sees."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import feedparser  # type: ignore[import-untyped]
from sqlalchemy import update
from transcripts_support import World, speak, world_fixture  # noqa: F401 - fixture

from helpers import Person, need_tool
from junto.enums import Visibility
from junto.storage.tables import Conversation, ConversationMedia

HOSTILE = 'Rivers <script>alert("x")</script> & "bridges"'


def _ffmpeg() -> str:
    import imageio_ffmpeg  # type: ignore[import-untyped]

    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def _ffprobe_seconds(data: bytes, tmp: Path) -> float:
    need_tool("ffprobe", "Debian package ffmpeg")
    path = tmp / "enclosure.m4a"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip())


async def _publish(host: Person, conv: Conversation) -> None:
    """The host's Publish button, through the API."""
    answer = await host.post(f"/api/conversations/{conv.slug}/publish")
    assert answer.status_code == 200, answer.text


async def _with_audio(world: World, conv: Conversation, tmp: Path) -> int:
    """An audio mix as composite.render writes it: AAC in MP4, from real speech."""
    wav = speak(tmp / "speech.wav", "Rivers shaped the cities that grew beside them.")
    relative = f"recordings/{conv.id}/audio.m4a"
    target = world.settings.data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "64k", str(target)],
        check=True,
    )
    async with world.node.db() as db:
        db.add(
            ConversationMedia(
                conversation_id=conv.id,
                kind="audio",
                path=relative,
                mime="audio/mp4",
                duration_s=4.0,
                bytes=target.stat().st_size,
            )
        )
        await db.commit()
    return target.stat().st_size


async def test_feeds_list_published_public_conversations_newest_first(
    world: World, tmp_path: Path
) -> None:
    host: Person = await world.member("hana", "Hana Host")
    older = await world.ended_conversation(host, title="Older talk", description="First one.")
    newer = await world.ended_conversation(host, title=HOSTILE, description="Second & last.")
    private = await world.ended_conversation(host, title="Private talk")
    ended_only = await world.ended_conversation(host, title="Not yet published")
    async with world.node.db() as db:
        await db.execute(
            update(Conversation)
            .where(Conversation.id == private.id)
            .values(visibility=Visibility.UNLISTED)
        )
        await db.commit()
    await _publish(host, older)
    await _publish(host, newer)
    await _publish(host, private)
    size = await _with_audio(world, newer, tmp_path)
    reader = world.anonymous().client

    rss = await reader.get("/feeds/conversations.rss")
    assert rss.status_code == 200
    assert rss.headers["content-type"].startswith("application/rss+xml")
    feed = feedparser.parse(rss.content)
    assert not feed.bozo, feed.bozo_exception
    assert [e.title for e in feed.entries] == [HOSTILE, "Older talk"]
    assert feed.entries[0].link == f"http://testserver/c/{newer.slug}"
    assert feed.entries[1].summary == "First one."
    assert "<script>" not in rss.text  # escaped as XML text, not markup
    assert ended_only.title not in rss.text and "Private talk" not in rss.text

    atom = await reader.get("/feeds/conversations.atom")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(atom.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "atom10"
    assert [e.title for e in parsed.entries] == [HOSTILE, "Older talk"]
    assert parsed.entries[0].author == "Hana Host"

    podcast = await reader.get("/feeds/podcast.rss")
    cast = feedparser.parse(podcast.content)
    assert not cast.bozo, cast.bozo_exception
    # Only conversations with an audio file are episodes.
    assert [e.title for e in cast.entries] == [HOSTILE]
    enclosure = cast.entries[0].enclosures[0]
    assert enclosure.type == "audio/mp4"
    assert int(enclosure.length) == size
    assert cast.entries[0].itunes_duration == "00:00:04"
    # The enclosure is served and plays: an audio file of the speech's length.
    path = enclosure.href.removeprefix("http://testserver")
    audio = await reader.get(path)
    assert audio.status_code == 200
    assert 2.0 < _ffprobe_seconds(audio.content, tmp_path) < 6.0


async def test_empty_feeds_are_valid(world: World) -> None:
    reader = world.anonymous().client
    for path in ("/feeds/conversations.rss", "/feeds/conversations.atom", "/feeds/podcast.rss"):
        answer = await reader.get(path)
        assert answer.status_code == 200
        parsed = feedparser.parse(answer.content)
        assert not parsed.bozo, (path, parsed.bozo_exception)
        assert parsed.entries == []
