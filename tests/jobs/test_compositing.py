"""The composite recording, rendered by a real worker with real ffmpeg from real WebM pieces."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import av
import pytest
from compositing_support import Speech, frame_at, loudness, seed
from jobs_support import Sessions, load
from sqlalchemy import select

from junto import compositing
from junto.config import Settings
from junto.enums import ConversationState, JobState, RecordingState
from junto.jobs import queue
from junto.jobs.worker import run_worker
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade
from junto.storage.tables import ConversationMedia

HOSTILE = "a':b\\,c%{pts}"


@pytest.fixture(name="local")
async def local_fixture(tmp_path: Path) -> AsyncIterator[tuple[Settings, Sessions]]:
    """Settings and sessions on SQLite: rendering does not depend on the database."""
    settings = Settings(data_dir=tmp_path / "data", secret_key="test", workers=0)
    settings.data_dir.mkdir(parents=True)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    yield settings, make_sessionmaker(engine)
    await engine.dispose()


async def render_job(sessions: Sessions, settings: Settings, conversation_id: int) -> int:
    async with sessions() as db:
        job = await queue.enqueue(
            db, "composite.render", {"conversation_id": conversation_id},
            conversation_id=conversation_id,
        )  # fmt: skip
        await db.commit()
    await run_worker(settings, "w-render", once=True)
    return job.id


async def test_two_speakers_are_laid_out_side_by_side_with_the_mixed_audio(
    local: tuple[Settings, Sessions],
) -> None:
    settings, sessions = local
    cid = await seed(
        sessions,
        settings,
        [
            Speech("Ana", offset=0, seconds=3, tone=440),
            Speech(HOSTILE, offset=4, seconds=3, tone=880),
        ],
    )
    job = await load(sessions, await render_job(sessions, settings, cid))
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.progress == 1.0 and job.progress_note.startswith("rendered 0:07")

    folder = settings.data_dir / "recordings" / str(cid)
    video, audio = folder / "composite.mp4", folder / "audio.m4a"
    with av.open(str(video)) as container:
        assert container.duration is not None
        assert abs(container.duration / 1e6 - 7.0) < 0.5
        (v,) = container.streams.video
        (a,) = container.streams.audio
        assert (v.codec_context.name, v.width, v.height) == ("h264", 1280, 720)
        assert a.codec_context.name == "aac"
    with av.open(str(audio)) as container:
        assert [s.type for s in container.streams] == ["audio"]
        assert container.streams.audio[0].codec_context.name == "aac"
    assert not [p for p in folder.iterdir() if p.name.startswith(".render-")], "temp dir left"

    # Sound where someone speaks, silence between Ana's end (3 s) and the second speaker (4 s).
    for path in (video, audio):
        assert loudness(path, 0.5, 2.5) > 0.05
        assert loudness(path, 3.3, 3.8) < 0.005
        assert loudness(path, 4.5, 6.5) > 0.05

    # Ana's tile (left) shows her picture while she is there and black afterwards; the other
    # tile (right) the other way round. Look above the name labels.
    def brightness(picture: object, left: bool) -> float:
        import numpy as np

        assert isinstance(picture, np.ndarray)
        half = picture[100:560, :640] if left else picture[100:560, 640:]
        return float(half.mean())

    early, late = frame_at(video, 1.5), frame_at(video, 5.5)
    assert brightness(early, left=True) > 40 and brightness(early, left=False) < 5
    assert brightness(late, left=True) < 5 and brightness(late, left=False) > 40

    async with sessions() as db:
        media = {
            m.kind: m
            for m in await db.scalars(
                select(ConversationMedia).where(ConversationMedia.conversation_id == cid)
            )
        }
    assert media["composite"].mime == "video/mp4" and media["audio"].mime == "audio/mp4"
    assert media["composite"].path == f"recordings/{cid}/composite.mp4"
    assert abs(media["composite"].duration_s - 7.0) < 0.5
    assert media["audio"].bytes == audio.stat().st_size > 0


async def test_a_screen_share_gets_the_large_area_above_the_speakers(
    local: tuple[Settings, Sessions],
) -> None:
    settings, sessions = local
    cid = await seed(
        sessions,
        settings,
        [Speech("Ana", 0, 2), Speech("Ana", 0.5, 1.5, 660, source="screen")],
    )
    job = await load(sessions, await render_job(sessions, settings, cid))
    assert job.state == JobState.SUCCEEDED, job.error
    video = settings.data_dir / "recordings" / str(cid) / "composite.mp4"
    before, during = frame_at(video, 0.2), frame_at(video, 1.2)
    assert float(before[:500].mean()) < 5, "no screen yet: the large area is black"
    assert float(during[:500].mean()) > 40, "the screen fills the large area"
    assert float(during[560:700, 540:740].mean()) > 40, "Ana's camera is in the strip below"


async def test_waits_while_recordings_are_being_finalized(local: tuple[Settings, Sessions]) -> None:
    settings, sessions = local
    cid = await seed(
        sessions,
        settings,
        [Speech("Ana", 0, 2), Speech("Bob", 1, 2, state=RecordingState.FINALIZING)],
    )
    job = await load(sessions, await render_job(sessions, settings, cid))
    assert job.state == JobState.QUEUED and job.attempts == 0
    assert job.progress_note == "waiting for recordings to finish"


async def test_waits_while_the_conversation_is_live(local: tuple[Settings, Sessions]) -> None:
    settings, sessions = local
    cid = await seed(sessions, settings, [], state=ConversationState.LIVE)
    job = await load(sessions, await render_job(sessions, settings, cid))
    assert job.state == JobState.QUEUED
    assert job.progress_note == "waiting for the conversation to end"


async def test_nothing_recorded_succeeds_without_files(local: tuple[Settings, Sessions]) -> None:
    settings, sessions = local
    cid = await seed(sessions, settings, [])
    job = await load(sessions, await render_job(sessions, settings, cid))
    assert job.state == JobState.SUCCEEDED and job.progress_note == "nothing was recorded"
    assert not (settings.data_dir / "recordings" / str(cid) / "composite.mp4").exists()


async def test_a_failing_ffmpeg_shows_the_end_of_its_errors(
    local: tuple[Settings, Sessions], tmp_path: Path
) -> None:
    settings, sessions = local
    cid = await seed(sessions, settings, [Speech("Ana", 0, 1)])
    # A real program that fails the way ffmpeg does: many lines on stderr, then exit status 1.
    broken = tmp_path / "broken-ffmpeg"
    broken.write_text(
        "#!/bin/sh\n"
        'for i in $(seq 1 30); do echo "problem $i in '
        f'{settings.data_dir}/x \\033[31mred\\033[0m" >&2; done\nexit 1\n'
    )
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    job = await load(
        sessions, await render_job(sessions, replace(settings, ffmpeg=str(broken)), cid)
    )
    assert job.state == JobState.FAILED and job.error is not None
    lines = job.error.splitlines()
    assert lines[0] == "ffmpeg failed (exit status 1):"
    assert lines[1].startswith("problem 11 in") and lines[-1].startswith("problem 30 in")
    assert len(lines) == 21
    assert str(settings.data_dir) not in job.error and "\x1b" not in job.error


async def test_an_unreadable_piece_is_left_out(local: tuple[Settings, Sessions]) -> None:
    settings, sessions = local
    cid = await seed(sessions, settings, [Speech("Ana", 0, 2), Speech("Bob", 0, 2)])
    corrupt = settings.data_dir / "recordings" / str(cid) / "piece1.webm"
    corrupt.write_bytes(os.urandom(4000))
    # What a worker killed two hours ago in the middle of a render left behind.
    stale = corrupt.parent / ".render-killed"
    stale.mkdir()
    (stale / "composite.mp4").write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    for path in (stale / "composite.mp4", stale):
        os.utime(path, (two_hours_ago, two_hours_ago))
    job = await load(sessions, await render_job(sessions, settings, cid))
    assert job.state == JobState.SUCCEEDED, job.error
    assert "1 unreadable recording(s) left out" in job.progress_note
    assert not stale.exists()


# ---- layout and graph (no ffmpeg) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "shape"),
    [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 2)), (6, (3, 2)),
     (7, (3, 3)), (10, (4, 3))],
)  # fmt: skip
def test_grid_shapes_follow_the_room(count: int, shape: tuple[int, int]) -> None:
    assert compositing.grid_shape(count) == shape
    tiles = compositing.grid(count, compositing.Tile(0, 0, 1280, 720))
    assert len({(t.x, t.y) for t in tiles}) == count
    assert all(t.w % 2 == 0 and t.h % 2 == 0 and t.x + t.w <= 1280 for t in tiles)


def test_screens_get_the_large_area() -> None:
    tiles, screen = compositing.layout([7, 8], has_screen=True)
    assert screen == compositing.Tile(0, 0, 1280, 540)
    assert tiles[7].y == 540 and tiles[8].x == 640


def test_names_never_reach_the_filter_graph() -> None:
    piece = compositing.Piece(0, Path("/x.webm"), 1, "camera", 0.0, 5.0, True, True)
    graph = compositing.filter_graph([piece], 5.0, {1: "name1.txt"}, compositing.FONT)
    assert "textfile=name1.txt:expansion=none" in graph
    assert HOSTILE not in graph and "%{" not in graph
    assert compositing.clean_name("Ana\n\x1bBob\u2028 " + "x" * 60).startswith("Ana Bob x")
    assert len(compositing.clean_name("y" * 100)) == compositing.NAME_MAX_CHARS
