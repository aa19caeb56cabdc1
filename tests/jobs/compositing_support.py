"""Real per-speaker WebM pieces (VP8 + Opus, as the recorder writes them) and the database rows
that describe them, for the compositing tests."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from junto.config import Settings
from junto.enums import ConversationState, RecordingState
from junto.jobs.ffmpeg import find_ffmpeg
from junto.storage.tables import Conversation, Recording, User
from junto.storage.types import utcnow


@dataclass(frozen=True)
class Speech:
    """One piece: who, when (seconds after the start), how long, and its tone."""

    name: str
    offset: float
    seconds: float
    tone: int = 440
    source: str = "camera"
    state: RecordingState = RecordingState.READY


def make_webm(
    settings: Settings, path: Path, seconds: float, tone: int, size: str = "320x240"
) -> None:
    """A VP8 + Opus WebM: a moving test picture and a sine tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [find_ffmpeg(settings), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size={size}:rate=20",
         "-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000",
         "-t", f"{seconds}", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
         "-b:v", "400k", "-c:a", "libopus", "-b:a", "48k", str(path)],
        check=True,
        timeout=120,
    )  # fmt: skip


async def seed(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    speeches: list[Speech],
    *,
    state: ConversationState = ConversationState.ENDED,
) -> int:
    """An ended conversation with these recording pieces; returns its id."""
    start = utcnow() - timedelta(minutes=10)
    async with sessions() as db:
        people: dict[str, User] = {}
        for speech in speeches:
            if speech.name not in people:
                people[speech.name] = User(display_name=speech.name, colour="#336699")
                db.add(people[speech.name])
        host = User(display_name="Host", colour="#000000")
        db.add(host)
        await db.flush()
        conv = Conversation(
            slug=secrets.token_hex(4), title="Rendered", state=state, started_at=start,
            ended_at=start + timedelta(minutes=5), created_by=host.id,
        )  # fmt: skip
        db.add(conv)
        await db.flush()
        for i, speech in enumerate(speeches):
            relative = f"recordings/{conv.id}/piece{i}.webm"
            if speech.state == RecordingState.READY:
                make_webm(settings, settings.data_dir / relative, speech.seconds, speech.tone)
            db.add(
                Recording(
                    conversation_id=conv.id, user_id=people[speech.name].id,
                    source=speech.source, state=speech.state, journal_path=relative + ".journal",
                    path=relative if speech.state == RecordingState.READY else None,
                    started_at=start + timedelta(seconds=speech.offset),
                    duration_s=speech.seconds, has_audio=True, has_video=True,
                )
            )  # fmt: skip
        await db.commit()
        return conv.id


def loudness(path: Path, start: float, end: float) -> float:
    """RMS of the (mono-mixed) audio between two times, 0..1."""
    samples: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            assert frame.pts is not None and frame.time_base is not None
            t = float(frame.pts * frame.time_base)
            data = frame.to_ndarray().astype(np.float64)
            mono = data.mean(axis=0) if data.ndim == 2 and data.shape[0] <= 8 else data.ravel()
            rate = frame.sample_rate
            first = int(max(start - t, 0) * rate)
            last = int(max(min(end - t, len(mono) / rate), 0) * rate)
            if last > first:
                samples.append(mono[first:last])
    if not samples:
        return 0.0
    joined = np.concatenate(samples)
    return float(np.sqrt(np.mean(joined**2)))


def frame_at(path: Path, when: float) -> np.ndarray:
    """The RGB picture shown at `when` seconds."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.pts is not None and frame.time_base is not None
            if float(frame.pts * frame.time_base) >= when:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no frame at {when} s")
