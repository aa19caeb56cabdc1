"""An ended conversation with a transcript and a composite video on a live node (browser tests).

The recording pieces and their words are written straight into the node's database, as the
recorder and the transcript.track job would, then the real transcript.build job runs. The
composite is a small VP8 WebM test pattern, which any Chromium build plays.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from transcripts_support import words_at

from conftest import LiveNode
from junto.config import Settings
from junto.enums import RecordingState, Role
from junto.jobs.worker import run_worker
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.tables import (
    BackchannelPost,
    Conversation,
    ConversationMedia,
    Participant,
    Recording,
    TrackTranscript,
)


def make_composite(path: Path, seconds: int) -> None:
    import imageio_ffmpeg  # type: ignore[import-untyped]

    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg = shutil.which("ffmpeg") or str(imageio_ffmpeg.get_ffmpeg_exe())
    source = f"testsrc=size=160x120:rate=10:duration={seconds}"
    args = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source, "-c:v", "libvpx"]
    subprocess.run([*args, "-b:v", "100k", str(path)], check=True)


async def write_transcribed(
    live: LiveNode,
    slug: str,
    lines: Sequence[tuple[int, float, str]],
    seconds: int,
    *,
    speaker_id: int,
    posts: Sequence[tuple[int, int, str]] = (),
) -> None:
    """`lines` are (user id, seconds from the start, words); `speaker_id` joins the stage;
    `posts` are backchannel posts (author id, ms from the start, body)."""
    settings = Settings(data_dir=live.data_dir, secret_key="live-test-secret")
    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            conv = (
                await db.execute(select(Conversation).where(Conversation.slug == slug))
            ).scalar_one()
            assert conv.started_at is not None
            db.add(Participant(conversation_id=conv.id, user_id=speaker_id, role=Role.SPEAKER))
            for user_id, offset, text in lines:
                started = conv.started_at + timedelta(seconds=offset)
                rec = Recording(
                    conversation_id=conv.id,
                    user_id=user_id,
                    source="camera",
                    state=RecordingState.READY,
                    journal_path="x",
                    path="x.webm",
                    started_at=started,
                    heartbeat_at=started,
                    has_audio=True,
                )
                db.add(rec)
                await db.flush()
                words = json.dumps(words_at(0.0, text))
                db.add(TrackTranscript(recording_id=rec.id, model="tiny.en", words=words))
            video = live.data_dir / "recordings" / str(conv.id) / "composite.webm"
            make_composite(video, seconds)
            db.add(
                ConversationMedia(
                    conversation_id=conv.id,
                    kind="composite",
                    path=str(video.relative_to(live.data_dir)),
                    mime="video/webm",
                    duration_s=float(seconds),
                    bytes=video.stat().st_size,
                )
            )
            for author, at, body in posts:
                db.add(
                    BackchannelPost(
                        conversation_id=conv.id, author_id=author, body=body, offset_ms=at
                    )
                )
            await db.commit()
    finally:
        await engine.dispose()
    assert await run_worker(settings, "browser-test", once=True, kinds=["transcript.build"]) == 1
