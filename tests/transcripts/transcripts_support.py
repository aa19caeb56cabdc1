"""A node in-process with people, an ended conversation and its recordings, for transcript tests.

Recording pieces and their words (TrackTranscript) are written as rows, the way the recorder and
the `transcript.track` job write them, so the build, the API and the page see honest data without
running WebRTC. Speech is made with espeak-ng + sox and transcribed by the real tiny.en model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import helpers
from helpers import Person, need_tool, open_world
from junto.config import Settings
from junto.enums import RecordingState, Role
from junto.jobs.worker import run_worker
from junto.storage.tables import Conversation, Job, Participant, Recording, TrackTranscript

# What two speakers say, as (speaker, seconds after the piece starts, words). Used as the
# TrackTranscript of their pieces: [[start_s, end_s, word, probability], ...].
Words = list[list[Any]]


def words_at(start_s: float, text: str, per_word_s: float = 0.4) -> Words:
    out: Words = []
    t = start_s
    for word in text.split():
        out.append([round(t, 3), round(t + per_word_s - 0.05, 3), word, 0.9])
        t += per_word_s
    return out


class World(helpers.World):
    """The harness's World, with the rows a transcript is built from."""

    async def ended_conversation(self, host: Person, **fields: Any) -> Conversation:
        """A conversation `host` created, started and ended through the API."""
        created = await host.post("/api/conversations", {"title": "Rivers and cities", **fields})
        assert created.status_code == 201, created.text
        slug = created.json()["slug"]
        for action in ("start", "end"):
            answer = await host.post(f"/api/conversations/{slug}/{action}")
            assert answer.status_code == 200, answer.text
        return await self.conversation(slug)

    async def conversation(self, slug: str) -> Conversation:
        async with self.node.db() as db:
            conv = (
                await db.execute(select(Conversation).where(Conversation.slug == slug))
            ).scalar_one()
            return conv

    async def add_participant(self, conv: Conversation, person: Person, role: Role) -> None:
        async with self.node.db() as db:
            db.add(Participant(conversation_id=conv.id, user_id=person.id, role=role))
            await db.commit()

    async def add_piece(
        self,
        conv: Conversation,
        person: Person,
        offset_s: float,
        words: Words | None,
        *,
        state: RecordingState = RecordingState.READY,
        path: str | None = None,
        has_audio: bool = True,
    ) -> int:
        """A recording piece of `person` starting `offset_s` after the conversation went live,
        with its TrackTranscript if `words` is given. Returns the recording's id."""
        assert conv.started_at is not None
        started = conv.started_at + timedelta(seconds=offset_s)
        async with self.node.db() as db:
            rec = Recording(
                conversation_id=conv.id,
                user_id=person.id,
                source="camera",
                state=state,
                journal_path=f"recordings/{conv.id}/{person.id}-{offset_s}.journal",
                path=path
                or (
                    f"recordings/{conv.id}/{person.id}-{offset_s}.webm"
                    if state == RecordingState.READY
                    else None
                ),
                started_at=started,
                ended_at=started + timedelta(seconds=30),
                heartbeat_at=started,
                duration_s=30.0,
                has_audio=has_audio,
                has_video=True,
                bytes=1000,
            )
            db.add(rec)
            await db.flush()
            if words is not None:
                db.add(
                    TrackTranscript(recording_id=rec.id, model="tiny.en", words=json.dumps(words))
                )
            await db.commit()
            return rec.id

    async def run_jobs(self, *kinds: str) -> int:
        """Run every ready job of `kinds` with a real worker (as `junto worker` would)."""
        return await run_worker(self.settings, "test-worker", once=True, kinds=list(kinds))

    async def jobs(self, kind: str) -> list[Job]:
        async with self.node.db() as db:
            rows = await db.execute(select(Job).where(Job.kind == kind).order_by(Job.id))
            return list(rows.scalars())


@pytest.fixture(name="world")
async def world_fixture(settings: Settings) -> AsyncIterator[World]:
    async with open_world(settings, World) as world:
        yield world


# ---- speech ---------------------------------------------------------------------------------

SCRIPT = (
    "Welcome to the stage. Today we talk about rivers, and the cities built beside them. "
    "Bridges came later, much later. Some cities turned away from the river for a century. "
    "Now they want the water back, and people swim again in summer."
)


def need_tools() -> None:
    for tool in ("espeak-ng", "sox"):
        need_tool(tool, f"Debian package {tool}")


def speak(path: Path, text: str, voice: str = "en-us", wpm: int = 160) -> Path:
    """`text` spoken by espeak-ng, as a 16 kHz mono WAV with half a second of silence around."""
    need_tools()
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", "16000", "-c", "1", str(path), "pad", "0.5", "0.5"], check=True
    )
    raw.unlink()
    return path


def join_with_silence(out: Path, first: Path, gap_s: float, second: Path) -> Path:
    """`first`, `gap_s` seconds of silence, then `second` (all 16 kHz mono WAVs)."""
    subprocess.run(["sox", str(first), str(out), "pad", "0", f"{gap_s:.3f}"], check=True)
    joined = out.with_suffix(".joined.wav")
    subprocess.run(["sox", str(out), str(second), str(joined)], check=True)
    joined.replace(out)
    return out


def to_webm(wav: Path, webm: Path) -> Path:
    """The WAV as Opus in WebM, the format the recorder writes."""
    import imageio_ffmpeg  # type: ignore[import-untyped]

    ffmpeg = shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()
    webm.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", "32k", str(webm)],
        check=True,
    )
    return webm


def wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def texts(segments: Sequence[dict[str, Any]]) -> list[str]:
    return [s["text"] for s in segments]
