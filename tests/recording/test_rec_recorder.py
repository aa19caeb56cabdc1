"""The recorder on a real node and database: tap → journal → row → finalize job → WebM.

The node is the real app (its own `Recorder`, wired as in production, worker processes off so
the test runs the finalize job itself with a real worker loop). Packets reach the recorder
through its tap, the function the SFU calls for every forwarded packet: real VP8 and Opus,
delivered at real-time pace.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager  # type: ignore[import-not-found]
from recording_support import Arrival, arrivals, probe
from sqlalchemy import select, update

from helpers import eventually
from junto import accounts, conversations
from junto.app import build_app
from junto.config import Settings
from junto.conversation_fields import ConversationCreate
from junto.enums import ConversationState, JobState, RecordingState
from junto.jobs.worker import run_worker
from junto.node import Node
from junto.recording.journal import JournalMeta, JournalWriter
from junto.recording.recorder import Piece, Recorder
from junto.recording.recovery import recover_orphans
from junto.storage.tables import Conversation, Job, Recording, User
from junto.storage.types import utcnow


@dataclass
class Stage:
    node: Node
    settings: Settings
    recorder: Recorder
    conv: Conversation
    speakers: list[User]

    async def rows(self) -> list[Recording]:
        async with self.node.db() as db:
            return list(await db.scalars(select(Recording).order_by(Recording.id)))

    async def jobs(self, kind: str) -> list[Job]:
        async with self.node.db() as db:
            return list(await db.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)))

    async def run_jobs(self, kind: str) -> int:
        ran: int = await run_worker(self.settings, "test-worker", once=True, kinds=[kind])
        return ran


async def add_user(db: Any, name: str) -> User:
    user = User(username=name, password_hash="!unusable", display_name=name.title(),
                colour=accounts.PALETTE[0], bio="", is_admin=False, is_guest=False)  # fmt: skip
    db.add(user)
    await db.flush()
    return user


@pytest.fixture
async def stage(settings: Settings) -> AsyncIterator[Stage]:
    settings = settings.with_overrides(workers=0, captions=False, recording=True)
    app = build_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t"),
    ):
        node: Node = app.state.node
        assert isinstance(node.recorder, Recorder), "the node records by default"
        async with node.db() as db:
            host = await add_user(db, "hana")
            guest_speaker = await add_user(db, "sol")
            conv = await conversations.create(db, ConversationCreate(title="Rivers", tags=[]), host)
            await db.execute(
                update(Conversation)
                .where(Conversation.id == conv.id)
                .values(state=ConversationState.LIVE, started_at=utcnow())
            )
            await db.commit()
        yield Stage(node, settings, node.recorder, conv, [host, guest_speaker])


async def feed(piece: Piece, packets: list[Arrival]) -> None:
    """Hand packets to the tap at the pace they were captured (the tap stamps arrival time)."""
    began = time.monotonic()
    for a in packets:
        delay = (a.wall - packets[0].wall) - (time.monotonic() - began)
        if delay > 0:
            await asyncio.sleep(delay)
        piece.tap(a.kind, a.packet())


async def test_a_speaker_is_recorded_finalized_and_queued_for_transcription(
    stage: Stage,
) -> None:
    room, speaker = stage.conv.id, stage.speakers[0]
    stage.recorder.on_air(room, speaker.id, "camera", utcnow())
    piece = stage.recorder.piece(room, speaker.id, "camera")
    assert piece is not None
    assert await stage.rows() == [], "no row before the first packet"

    packets = arrivals(seconds=2.5)
    before = datetime.now(UTC)
    await feed(piece, packets)
    [row] = await stage.rows()
    assert row.state == RecordingState.RECORDING
    assert (row.conversation_id, row.user_id, row.source) == (room, speaker.id, "camera")
    assert before <= row.started_at <= before + timedelta(seconds=0.2)
    journal = stage.settings.data_dir / row.journal_path
    assert row.journal_path == f"recordings/{room}/{row.id}.journal"
    # Flushed while recording: a crash now would keep all but the last half second.
    assert journal.stat().st_size > 20_000
    async with stage.node.db() as db:  # as if the last heartbeat were long ago
        await db.execute(update(Recording).values(heartbeat_at=utcnow() - timedelta(seconds=60)))
        await db.commit()
    await stage.recorder.heartbeat()
    [row] = await stage.rows()
    assert utcnow() - row.heartbeat_at < timedelta(seconds=2)
    assert 20_000 < row.bytes <= journal.stat().st_size

    stage.recorder.off_air(room, speaker.id, "camera")
    assert stage.recorder.piece(room, speaker.id, "camera") is None

    async def finalizing() -> bool:
        return bool((await stage.rows())[0].state == RecordingState.FINALIZING)

    await eventually(finalizing)
    [row] = await stage.rows()
    assert row.ended_at is not None
    assert abs((row.ended_at - row.started_at).total_seconds() - 2.5) < 0.2
    [job] = await stage.jobs("recording.finalize")
    assert (job.state, json.loads(job.payload)) == (JobState.QUEUED, {"recording_id": row.id})
    assert job.conversation_id == room

    assert await stage.run_jobs("recording.finalize") == 1
    [job] = await stage.jobs("recording.finalize")
    assert job.state == JobState.SUCCEEDED, job.error
    [row] = await stage.rows()
    assert row.state == RecordingState.READY
    assert (row.has_audio, row.has_video) == (True, True)
    assert row.duration_s is not None and abs(row.duration_s - 2.5) < 0.2
    webm = stage.settings.data_dir / str(row.path)
    assert row.bytes == webm.stat().st_size
    got = probe(webm)
    assert abs(got.duration - 2.5) < 0.2 and got.video_frames >= 70 and got.audio_seconds > 2.2
    assert not journal.exists(), "the journal goes once the WebM is committed"
    [transcribe] = await stage.jobs("transcript.track")
    assert json.loads(transcribe.payload) == {"recording_id": row.id}

    # Finalizing again (a retried job) changes nothing.
    async with stage.node.db() as db:
        from junto.jobs.queue import enqueue

        await enqueue(db, "recording.finalize", {"recording_id": row.id})
        await db.commit()
    assert await stage.run_jobs("recording.finalize") == 1
    assert [j.state for j in await stage.jobs("recording.finalize")] == [JobState.SUCCEEDED] * 2
    assert (await stage.rows())[0].path == row.path
    assert len(await stage.jobs("transcript.track")) == 1


async def test_on_air_without_packets_leaves_nothing_behind(stage: Stage) -> None:
    room, (host, other) = stage.conv.id, stage.speakers
    stage.recorder.on_air(room, host.id, "camera", utcnow())
    stage.recorder.off_air(room, host.id, "camera")
    # Video that never reaches a key frame records nothing either.
    stage.recorder.on_air(room, other.id, "screen", utcnow())
    piece = stage.recorder.piece(room, other.id, "screen")
    assert piece is not None
    deltas = [a for a in arrivals(seconds=1.0, audio=False) if not a.keyframe]
    for a in deltas:
        piece.tap(a.kind, a.packet())
    stage.recorder.off_air(room, other.id, "screen")
    await asyncio.sleep(0.3)
    assert await stage.rows() == []
    assert await stage.jobs("recording.finalize") == []
    assert not (stage.settings.data_dir / "recordings").exists()


async def test_a_full_disk_fails_one_piece_and_the_others_go_on(stage: Stage) -> None:
    room, (host, other) = stage.conv.id, stage.speakers
    for user in (host, other):
        stage.recorder.on_air(room, user.id, "camera", utcnow())
    pieces = [stage.recorder.piece(room, u.id, "camera") for u in (host, other)]
    assert pieces[0] is not None and pieces[1] is not None
    packets = arrivals(seconds=2.0)
    await asyncio.gather(feed(pieces[0], packets[:30]), feed(pieces[1], packets[:30]))

    async def both_recording() -> bool:
        return all(p.writer is not None for p in pieces if p is not None)

    await eventually(both_recording)
    # From now on the host's journal lives on a full disk (what ENOSPC looks like to a writer).
    writer = pieces[0].writer
    assert writer is not None and writer._fd is not None
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, writer._fd)
    os.close(full)
    await asyncio.gather(feed(pieces[0], packets[30:]), feed(pieces[1], packets[30:]))

    # The two pieces' rows are created concurrently: which gets the smaller id is a race, so
    # rows are looked up by speaker, never by position.
    async def row_of(user_id: int) -> Recording:
        return next(r for r in await stage.rows() if r.user_id == user_id)

    async def host_failed() -> bool:
        return bool((await row_of(host.id)).state == RecordingState.FAILED)

    await eventually(host_failed)
    failed, going = await row_of(host.id), await row_of(other.id)
    assert "No space left on device" in str(failed.error)
    assert stage.recorder.piece(room, host.id, "camera") is None
    pieces[0].tap("audio", packets[0].packet())  # a late packet is ignored, not an error
    assert going.state == RecordingState.RECORDING

    stage.recorder.off_air(room, other.id, "camera")
    stage.recorder.off_air(room, host.id, "camera")

    async def finalizing() -> bool:
        return bool((await row_of(other.id)).state == RecordingState.FINALIZING)

    await eventually(finalizing)
    assert await stage.run_jobs("recording.finalize") == 1
    assert (await row_of(other.id)).state == RecordingState.READY


async def test_orphaned_pieces_are_finalized_from_their_journal(stage: Stage) -> None:
    """A crashed process left a RECORDING row with a stale heartbeat and an open journal."""
    room, (host, other) = stage.conv.id, stage.speakers
    now = utcnow()
    packets = arrivals(seconds=2.0, wall0=time.time() - 60)
    async with stage.node.db() as db:
        orphan = Recording(conversation_id=room, user_id=host.id, source="camera",
                           state=RecordingState.RECORDING, journal_path="",
                           started_at=datetime.fromtimestamp(packets[0].wall, UTC),
                           heartbeat_at=now - timedelta(seconds=40))  # fmt: skip
        alive = Recording(conversation_id=room, user_id=other.id, source="camera",
                          state=RecordingState.RECORDING, journal_path="x.journal",
                          started_at=now, heartbeat_at=now)  # fmt: skip
        db.add_all([orphan, alive])
        await db.flush()
        orphan.journal_path = f"recordings/{room}/{orphan.id}.journal"
        await db.commit()
    meta = JournalMeta(orphan.id, room, host.id, "camera", orphan.started_at.isoformat())
    writer = JournalWriter(stage.settings.data_dir / orphan.journal_path, meta)
    for a in packets:
        writer.append(a.kind, a.data, a.pts, a.time_base, a.keyframe, a.wall)
    writer.flush()  # ... and then the process died: never closed

    assert await recover_orphans(stage.node, stage.settings, stale_after_s=15) == 1
    assert await recover_orphans(stage.node.db, stage.settings, stale_after_s=15) == 0
    rows = {r.id: r for r in await stage.rows()}
    assert rows[alive.id].state == RecordingState.RECORDING, "a live heartbeat is left alone"
    recovered = rows[orphan.id]
    assert recovered.state == RecordingState.FINALIZING
    assert recovered.ended_at == datetime.fromtimestamp(packets[-1].wall, UTC)
    [job] = await stage.jobs("recording.finalize")
    assert json.loads(job.payload) == {"recording_id": orphan.id}

    assert await stage.run_jobs("recording.finalize") == 1
    ready = {r.id: r for r in await stage.rows()}[orphan.id]
    assert ready.state == RecordingState.READY
    got = probe(stage.settings.data_dir / str(ready.path))
    assert abs(got.duration - 2.0) < 0.2 and got.video_frames >= 55


async def test_a_journal_that_cannot_be_read_fails_the_job_with_a_reason(stage: Stage) -> None:
    room, (host, other) = stage.conv.id, stage.speakers
    # 0: not a journal; 1: a journal with no packet; 2: gone although it had data (a worker
    # looking in the wrong data dir?); 3: gone, but the process died before writing any.
    async with stage.node.db() as db:
        from junto.jobs.queue import enqueue

        rows = [
            Recording(
                conversation_id=room,
                user_id=host.id if n % 2 else other.id,
                source="camera",
                state=RecordingState.FINALIZING,
                journal_path=f"recordings/{room}/{n}.j",
                started_at=utcnow(),
                heartbeat_at=utcnow(),
                bytes=50_000 if n == 2 else 0,
            )
            for n in range(4)
        ]
        db.add_all(rows)
        await db.flush()
        for row in rows:
            await enqueue(db, "recording.finalize", {"recording_id": row.id})
        await db.commit()
    folder = stage.settings.data_dir / "recordings" / str(room)
    folder.mkdir(parents=True)
    (folder / "0.j").write_bytes(b"\x1aE\xdf\xa3 not a journal")
    empty = JournalWriter(folder / "1.j", JournalMeta(rows[1].id, room, host.id, "camera", ""))
    empty.close()

    assert await stage.run_jobs("recording.finalize") == 4
    corrupt, nothing, missing, never = await stage.rows()
    assert {r.state for r in (corrupt, nothing, missing, never)} == {RecordingState.FAILED}
    assert "not a recording journal" in str(corrupt.error)
    assert nothing.error == never.error == "nothing was recorded"
    assert "is missing" in str(missing.error)
    jobs = await stage.jobs("recording.finalize")
    assert [j.state for j in jobs] == [
        JobState.FAILED, JobState.SUCCEEDED, JobState.FAILED, JobState.SUCCEEDED,
    ]  # fmt: skip
    assert "not a recording journal" in str(jobs[0].error)
    assert "is missing" in str(jobs[2].error)
    assert jobs[0].attempts == 1, "no retry: it cannot get better"
    assert (folder / "0.j").exists(), "kept for whoever investigates"
    assert not (folder / "1.j").exists()
    assert await stage.jobs("transcript.track") == []


async def test_a_leftover_journal_of_the_same_name_is_moved_aside(stage: Stage) -> None:
    """SQLite may reuse the id of a deleted recording whose journal is still on disk."""
    room, speaker = stage.conv.id, stage.speakers[0]
    folder = stage.settings.data_dir / "recordings" / str(room)
    folder.mkdir(parents=True)
    (folder / "1.journal").write_bytes(b"old")
    stage.recorder.on_air(room, speaker.id, "camera", utcnow())
    piece = stage.recorder.piece(room, speaker.id, "camera")
    assert piece is not None
    for a in arrivals(seconds=1.0)[:20]:
        piece.tap(a.kind, a.packet())
    stage.recorder.off_air(room, speaker.id, "camera")

    async def finalizing() -> bool:
        rows = await stage.rows()
        return bool(rows and rows[0].state == RecordingState.FINALIZING)

    await eventually(finalizing)
    [row] = await stage.rows()
    assert row.journal_path == f"recordings/{room}/1.journal"
    assert (folder / "1.journal").stat().st_size > 1000
    [stale] = folder.glob("1.journal.stale-*")
    assert stale.read_bytes() == b"old"


async def test_a_corrupt_stream_beside_a_good_one_leaves_the_good_recording_whole(
    stage: Stage,
) -> None:
    """A speaker whose packets are garbage (a broken encoder, a hostile client) is recorded
    as what it sent, or fails with a reason; the speaker beside them is recorded whole."""
    room = stage.conv.id
    good, bad = stage.speakers
    started = utcnow()
    for speaker in (good, bad):
        stage.recorder.on_air(room, speaker.id, "camera", started)
    good_piece = stage.recorder.piece(room, good.id, "camera")
    bad_piece = stage.recorder.piece(room, bad.id, "camera")
    assert good_piece is not None and bad_piece is not None
    packets = arrivals(seconds=2.0)
    garbage = [
        Arrival(a.kind, os.urandom(len(a.data)), a.pts, a.time_base, a.keyframe, a.wall)
        for a in packets
    ]
    # A key frame's header with garbage behind it: it passes the recorder's key-frame check.
    garbage[0] = Arrival("video", b"\x10\x02\x00\x9d\x01\x2a" + os.urandom(500), 0,
                         packets[0].time_base, True, packets[0].wall)  # fmt: skip
    await asyncio.gather(feed(good_piece, packets), feed(bad_piece, garbage))
    for speaker in (good, bad):
        stage.recorder.off_air(room, speaker.id, "camera")

    async def both_closed() -> bool:
        rows = await stage.rows()
        return len(rows) == 2 and all(r.state != RecordingState.RECORDING for r in rows)

    await eventually(both_closed)
    assert await stage.run_jobs("recording.finalize") == 2
    rows = {r.user_id: r for r in await stage.rows()}
    assert rows[good.id].state == RecordingState.READY
    got = probe(stage.settings.data_dir / str(rows[good.id].path))
    assert abs(got.duration - 2.0) < 0.2 and got.video_frames >= 55 and got.audio_seconds > 1.8
    # The garbage speaker's job ended one way or the other, with a reason if it failed.
    jobs = {
        json.loads(j.payload)["recording_id"]: j for j in await stage.jobs("recording.finalize")
    }
    bad_job = jobs[rows[bad.id].id]
    assert bad_job.state in (JobState.SUCCEEDED, JobState.FAILED)
    assert rows[bad.id].state in (RecordingState.READY, RecordingState.FAILED)
    if rows[bad.id].state == RecordingState.FAILED:
        assert rows[bad.id].error
