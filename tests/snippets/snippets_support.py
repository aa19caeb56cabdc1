"""Published conversations with a transcript, a real composite video and consents, for the
snippet tests (tests/snippets).

The conversation is tests/knowledge/knowledge_support.py's `talk` (Ana hosts, Ben speaks, words
0.4 s apart, transcript built by the real job); its media are small but real H.264/AAC files
made by ffmpeg with the compositor's keyframe interval (one a second), so snippets are cut from
the kind of file they are cut from in production.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg  # type: ignore[import-untyped]
from knowledge_support import said_at, talk
from sqlalchemy import func, select
from transcripts_support import World

from helpers import Person
from junto.compositing import FPS
from junto.storage.tables import Conversation, ConversationMedia, MediaConsent, Snippet

STATEMENT = "I agree to be recorded, transcribed and published in this conversation."


def ffmpeg() -> str:
    return shutil.which("ffmpeg") or str(imageio_ffmpeg.get_ffmpeg_exe())


def make_media(
    folder: Path, seconds: float, *, wav: Path | None = None, size: str = "320x180"
) -> tuple[Path, Path]:
    """composite.mp4 (a test picture whose hue turns once every 4 s, so frames half a second
    apart look different, and `wav` or a tone) and audio.m4a, as the compositor writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    audio_in = ["-i", str(wav)] if wav else ["-f", "lavfi", "-i", "sine=frequency=330"]
    video, audio = folder / "composite.mp4", folder / "audio.m4a"
    subprocess.run(
        [ffmpeg(), "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size={size}:rate={FPS}", *audio_in,
         "-filter_complex", "[0:v]hue=H=2*PI*t/4[v];[1:a]apad[a]",
         "-map", "[v]", "-map", "[a]", "-t", f"{seconds:.3f}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-r", str(FPS),
         "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0",
         "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-movflags", "+faststart", str(video)],
        check=True,
        timeout=300,
    )  # fmt: skip
    subprocess.run(
        [ffmpeg(), "-v", "error", "-y", "-i", str(video), "-map", "0:a", "-c", "copy",
         "-movflags", "+faststart", str(audio)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return video, audio


def talk_seconds() -> float:
    _, at, line = said_at()[-1]
    return at + len(line.split()) * 0.4 + 2.0


async def attach_media(
    world: World, conv: Conversation, video: Path, audio: Path, seconds: float
) -> None:
    """Copy the files into the data dir as the compositor's output of `conv`."""
    base = world.settings.data_dir / "recordings" / str(conv.id)
    base.mkdir(parents=True, exist_ok=True)
    async with world.node.db() as db:
        for kind, src, mime in (
            ("composite", video, "video/mp4"),
            ("audio", audio, "audio/mp4"),
        ):
            shutil.copy(src, base / src.name)
            db.add(
                ConversationMedia(
                    conversation_id=conv.id,
                    kind=kind,
                    path=f"recordings/{conv.id}/{src.name}",
                    mime=mime,
                    duration_s=seconds,
                    bytes=src.stat().st_size,
                )
            )
        await db.commit()


async def consent(world: World, conv: Conversation, *people: Person) -> None:
    async with world.node.db() as db:
        for person in people:
            db.add(MediaConsent(conversation_id=conv.id, user_id=person.id, statement=STATEMENT))
        await db.commit()


async def snippetable(
    world: World,
    host: Person,
    guest: Person,
    media: tuple[Path, Path] | None,
    *,
    publish: bool = True,
    **fields: object,
) -> Conversation:
    """`talk` with its media and both speakers' consents, published unless told otherwise."""
    conv = await talk(world, host, guest, **fields)
    if media is not None:
        await attach_media(world, conv, *media, talk_seconds())
    await consent(world, conv, host, guest)
    if publish:
        answer = await host.post(f"/api/conversations/{conv.slug}/publish")
        assert answer.status_code == 200, answer.text
    return await world.conversation(conv.slug)


async def snippet_count(world: World) -> int:
    async with world.node.db() as db:
        return int(await db.scalar(select(func.count()).select_from(Snippet)) or 0)


def line_range(index: int) -> tuple[int, int, str]:
    """(start_ms, end_ms, words) of TALK's line `index` on the conversation's timeline."""
    _, at, line = said_at()[index]
    words = line.split()
    return round(at * 1000), round((at + len(words) * 0.4 - 0.05) * 1000), line
