"""Ended conversations with a transcript, a small composite video and backchannel posts, for the
conversation-page tests (tests/published).

Built on tests/transcripts/transcripts_support.py (people, an ended conversation, recording
pieces with their words, the real `transcript.build` job); the video is a few seconds of
ffmpeg's test pattern with a tone, so pages, players and thumbnails get a real file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "transcripts"))
from transcripts_support import World, words_at

from helpers import Person
from junto.enums import Role
from junto.storage.tables import BackchannelPost, Conversation, ConversationMedia
from junto.storage.types import utcnow

# (whose line: 0 = host, 1 = guest; seconds into the conversation; words)
LINES = [
    (0, 0.0, "Welcome to the stage. Today we talk about rivers and cities."),
    (1, 5.0, "Thank you for having me <script>alert(1)</script> here."),
    (0, 9.0, "Tell us about the houseboat on the canal."),
]


def ffmpeg() -> str:
    import imageio_ffmpeg  # type: ignore[import-untyped]

    return shutil.which("ffmpeg") or str(imageio_ffmpeg.get_ffmpeg_exe())


def make_mp4(path: Path, seconds: int) -> Path:
    """A small H.264/AAC MP4 (what the compositor writes), test pattern and a tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            ffmpeg(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size=320x180:rate=10:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "48k",
            "-movflags",
            "+faststart",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


async def transcribed(world: World, host: Person, guest: Person, **fields: object) -> Conversation:
    """An ended conversation of `host` with `guest` as a speaker and a built transcript."""
    conv = await world.ended_conversation(host, **fields)
    await world.add_participant(conv, guest, Role.SPEAKER)
    people = [host, guest]
    for who, offset, text in LINES:
        await world.add_piece(conv, people[who], offset, words_at(0.0, text))
    assert await world.run_jobs("transcript.build") == 1
    return conv


async def add_video(data_dir: Path, world: World, conv: Conversation, seconds: int = 14) -> Path:
    video = make_mp4(data_dir / "recordings" / str(conv.id) / "composite.mp4", seconds)
    async with world.node.db() as db:
        db.add(
            ConversationMedia(
                conversation_id=conv.id,
                kind="composite",
                path=str(video.relative_to(data_dir)),
                mime="video/mp4",
                duration_s=float(seconds),
                bytes=video.stat().st_size,
            )
        )
        await db.commit()
    return video


async def add_posts(
    world: World, conv: Conversation, posts: list[tuple[int, int, str]], deleted: str = ""
) -> None:
    """Backchannel posts as (author id, offset ms, body); `deleted` adds a deleted one at 1 s."""
    async with world.node.db() as db:
        for author, at, body in posts:
            db.add(
                BackchannelPost(conversation_id=conv.id, author_id=author, body=body, offset_ms=at)
            )
        if deleted:
            db.add(
                BackchannelPost(
                    conversation_id=conv.id,
                    author_id=posts[0][0],
                    body=deleted,
                    offset_ms=1000,
                    deleted_at=utcnow() + timedelta(seconds=1),
                )
            )
        await db.commit()
