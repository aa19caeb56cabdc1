"""The recorder: every on-air speaker's source, journaled packet by packet as it is forwarded.

`Recorder` is an on-air consumer (junto.recording.on_air). When a speaker's source goes on air it
taps the SFU for that source; each continuous stretch on air is one *piece* (a `recordings` row
and a journal file). The tap runs on the forwarding path, so it only appends the packet to the
journal's memory buffer; everything else happens in tasks:

- the first packet creates the row (`started_at` = that packet's wall clock) and opens the
  journal; packets arriving meanwhile wait in memory;
- every `flush_interval` the journals' buffers go to the OS, in a thread (at most that much is
  lost if the process is killed);
- every `heartbeat_interval` the live rows' `heartbeat_at` and `bytes` are refreshed, so another
  process can tell a dead recorder's pieces (junto.recording.recovery, run here at start and
  every `recovery_interval`);
- off air, the journal is closed and the row becomes FINALIZING with a `recording.finalize` job
  queued in the same transaction; a piece that never got a packet leaves nothing behind.

Video waits for a key frame so every file starts decodable. A write failure (a full disk) fails
that piece alone: its row says why, and the stage and other pieces go on.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from junto.enums import RecordingState
from junto.jobs.queue import enqueue, wake
from junto.media.vp8 import is_vp8_keyframe
from junto.recording.journal import JournalMeta, JournalWriter
from junto.recording.recovery import FINALIZE, recover_orphans
from junto.storage.tables import Recording
from junto.storage.types import utcnow

if TYPE_CHECKING:
    from junto.node import Node

log = logging.getLogger("junto.recording")

Key = tuple[int, int, str]  # (room, user_id, source)
_DEFAULT_TB = {"audio": Fraction(1, 48000), "video": Fraction(1, 90000)}
# Packets held in memory while a piece's row and journal are being created (normally a few
# milliseconds; this bounds a stalled database): about 40 s of 640x480 video.
MAX_EARLY_BYTES = 8 * 1024 * 1024
KEYFRAME_RETRY_S = 2.0
# junto.transcripts.ahead's job and its first look (named here: that module loads Whisper).
AHEAD = "transcript.ahead"
AHEAD_FIRST_S = 20.0
OPEN_RETRIES = (0.5, 1.0, 2.0)


def journal_relpath(conversation_id: int, recording_id: int) -> str:
    return f"recordings/{conversation_id}/{recording_id}.journal"


def _create_journal(path: Path, meta: JournalMeta) -> JournalWriter:
    try:
        return JournalWriter(path, meta)
    except FileExistsError:
        # Left by a recording whose row is gone (its conversation was deleted, and SQLite
        # reused the id): keep it, but out of the way.
        stale = path.with_name(f"{path.name}.stale-{int(time.time())}")
        log.warning("moving an unknown journal aside to %s", stale)
        os.replace(path, stale)
        return JournalWriter(path, meta)


class PieceState(enum.Enum):
    WAITING = "waiting"  # on air, no packet yet
    OPENING = "opening"  # first packet came; row and journal being created
    RECORDING = "recording"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


class Piece:
    """One continuous stretch of one speaker's source on air."""

    def __init__(self, recorder: Recorder, room: int, user_id: int, source: str) -> None:
        self.recorder = recorder
        self.room = room
        self.user_id = user_id
        self.source = source
        self.state = PieceState.WAITING
        self.recording_id: int | None = None
        self.writer: JournalWriter | None = None
        self.early: list[tuple[str, bytes, int | None, Fraction, bool, float]] = []
        self.early_bytes = 0
        self.first_wall: float | None = None
        self.video_started = False
        self.video_waiting_since: float | None = None
        self.last_keyframe_request = 0.0
        self.off_air = False
        self.remove_tap: Callable[[], None] | None = None
        self.dropped = 0

    @property
    def key(self) -> Key:
        return (self.room, self.user_id, self.source)

    def tap(self, kind: str, packet: Any) -> None:
        """The SFU tap: called on the event loop for every packet; must return at once."""
        try:
            self._take(kind, packet)
        except Exception as exc:
            # Never into the forwarding path, and not once per packet into the log either.
            log.exception("recording a packet failed; this piece stops")
            self.recorder.fail(self, exc)

    def _take(self, kind: str, packet: Any) -> None:
        state = self.state
        if state not in (PieceState.WAITING, PieceState.OPENING, PieceState.RECORDING):
            return
        wall = time.time()
        keyframe = False
        if kind == "video":
            keyframe = is_vp8_keyframe(bytes(memoryview(packet)[:3]))
            if not self.video_started:
                if not keyframe:
                    self.dropped += 1
                    if self.video_waiting_since is None:
                        self.video_waiting_since = wall
                        self.recorder.request_keyframe(self)
                    return
                self.video_started = True
        time_base = packet.time_base or _DEFAULT_TB[kind]
        writer = self.writer
        if writer is not None:
            # Raises JournalBacklog if the disk stopped keeping up: tap() fails the piece.
            writer.append(kind, packet, packet.pts, time_base, keyframe, wall)
            return
        if self.early_bytes > MAX_EARLY_BYTES:
            self.dropped += 1
            return
        data = bytes(packet)
        self.early.append((kind, data, packet.pts, time_base, keyframe, wall))
        self.early_bytes += len(data)
        if state == PieceState.WAITING:
            self.state = PieceState.OPENING
            self.first_wall = wall
            self.recorder.spawn(self.recorder.open_piece(self))


class Recorder:
    """Records every on-air speaker's source (see the module docstring).

    Wiring: `recorder = Recorder(node)`, `node.on_air.add(recorder)`, `await recorder.start()`;
    `await recorder.stop()` at shutdown closes every piece as if it went off air.
    """

    def __init__(
        self,
        node: Node,
        *,
        flush_interval: float = 0.5,
        heartbeat_interval: float = 3.0,
        recovery_interval: float = 10.0,
        stale_after_s: float = 15.0,
    ) -> None:
        self.node = node
        self.settings = node.settings
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.recovery_interval = recovery_interval
        self.stale_after_s = stale_after_s
        self.pieces: dict[Key, Piece] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: set[Piece] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.running = False

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over pieces orphaned by a crash, then start the periodic work."""
        self.running = True
        await self._recover()
        self._loop_task = asyncio.get_running_loop().create_task(self._periodic())

    async def stop(self) -> None:
        """Close every piece (as off air does) and wait until each is handed to finalizing."""
        self.running = False
        for piece in list(self.pieces.values()):
            self._end(piece)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- on air / off air -----------------------------------------------------------------------

    def on_air(self, room: int, user_id: int, source: str, started_at: datetime) -> None:
        media = self.node.media
        if not self.running or media is None:
            return
        key = (room, user_id, source)
        old = self.pieces.get(key)
        if old is not None:  # not expected: on/off air alternate; end the old piece cleanly
            self._end(old)
        piece = Piece(self, room, user_id, source)
        self.pieces[key] = piece
        piece.remove_tap = media.add_tap(room, user_id, piece.tap, source)

    def off_air(self, room: int, user_id: int, source: str) -> None:
        piece = self.pieces.get((room, user_id, source))
        if piece is not None:
            self._end(piece)

    def gathering(self, room: int) -> None:
        """Nothing to prepare: a piece opens with its first on-air packet."""

    def piece(self, room: int, user_id: int, source: str) -> Piece | None:
        """The piece being recorded for this speaker's source, if any."""
        return self.pieces.get((room, user_id, source))

    def _detach(self, piece: Piece) -> None:
        if self.pieces.get(piece.key) is piece:
            del self.pieces[piece.key]
        remove, piece.remove_tap = piece.remove_tap, None
        if remove is not None:
            try:
                remove()
            except Exception:
                log.exception("removing a recording tap failed")

    def _end(self, piece: Piece) -> None:
        """Off air: no more packets; close what was recorded (or leave nothing if none was)."""
        piece.off_air = True
        self._detach(piece)
        if piece.state == PieceState.WAITING:
            piece.state = PieceState.CLOSED  # no packet: no row, no file
        elif piece.state == PieceState.RECORDING:
            piece.state = PieceState.CLOSING
            self.spawn(self._close(piece))
        # OPENING: open_piece sees `off_air` when it is done and closes the piece itself.

    def request_keyframe(self, piece: Piece) -> None:
        """Ask the publisher for a key frame.

        Recording can start in the middle of a stream (a conversation going live while its
        speakers already publish) and must then wait for a key frame; browsers send one when
        asked (PLI).
        """
        piece.last_keyframe_request = time.monotonic()
        media = self.node.media
        if media is None:
            return
        try:
            media.request_keyframe(piece.room, piece.user_id, piece.source)
        except Exception:
            log.debug("could not ask for a key frame", exc_info=True)

    # ---- a piece's life -------------------------------------------------------------------------

    async def open_piece(self, piece: Piece) -> None:
        """Create the row and the journal for a piece whose first packet just came."""
        assert piece.first_wall is not None
        started_at = datetime.fromtimestamp(piece.first_wall, UTC)
        writer: JournalWriter | None = None
        for delay in (*OPEN_RETRIES, None):
            try:
                if piece.recording_id is None:
                    piece.recording_id = await self._insert_row(piece, started_at)
                meta = JournalMeta(
                    recording_id=piece.recording_id,
                    conversation_id=piece.room,
                    user_id=piece.user_id,
                    source=piece.source,
                    started_at=started_at.isoformat(),
                )
                path = self.settings.data_dir / journal_relpath(piece.room, piece.recording_id)
                writer = await asyncio.to_thread(_create_journal, path, meta)
                break
            except Exception as exc:
                if delay is None or isinstance(exc, OSError):
                    log.exception(
                        "conversation %s, user %s: cannot record", piece.room, piece.user_id
                    )
                    await self._mark_failed(piece, exc)
                    return
                log.warning("starting a recording failed (%s); trying again", exc)
                await asyncio.sleep(delay)
        assert writer is not None
        if piece.state != PieceState.OPENING:  # failed meanwhile
            writer.abandon()
            return
        # On the loop, in one go: nothing can arrive between the replay and the switch.
        try:
            for record in piece.early:
                writer.append(*record)
        except OSError as exc:
            writer.abandon()
            await self._mark_failed(piece, exc)
            return
        piece.early.clear()
        piece.early_bytes = 0
        piece.writer = writer
        piece.state = PieceState.RECORDING
        if piece.off_air:
            piece.state = PieceState.CLOSING
            await self._close(piece)

    async def _insert_row(self, piece: Piece, started_at: datetime) -> int:
        async with self.node.db() as db:
            row = Recording(
                conversation_id=piece.room,
                user_id=piece.user_id,
                source=piece.source,
                state=RecordingState.RECORDING,
                journal_path="",
                started_at=started_at,
                heartbeat_at=utcnow(),
                has_audio=False,
                has_video=False,
                bytes=0,
            )
            db.add(row)
            await db.flush()
            row.journal_path = journal_relpath(piece.room, row.id)
            # Its transcript is made while it is recorded (junto.transcripts.ahead).
            await enqueue(
                db,
                AHEAD,
                {"recording_id": row.id},
                conversation_id=piece.room,
                delay_s=AHEAD_FIRST_S,
            )
            await db.commit()
            return row.id

    async def _close(self, piece: Piece) -> None:
        writer = piece.writer
        assert writer is not None and piece.recording_id is not None
        self._closing.add(piece)
        try:
            async with self._flush_lock:  # not while the periodic flush writes this journal
                await asyncio.to_thread(writer.close)
        except OSError as exc:
            self._closing.discard(piece)
            await self._mark_failed(piece, exc)
            return
        last = writer.last_wall if writer.last_wall is not None else piece.first_wall
        ended_at = datetime.fromtimestamp(last or time.time(), UTC)
        try:
            async with self.node.db() as db:
                result = await db.execute(
                    update(Recording)
                    .where(
                        Recording.id == piece.recording_id,
                        Recording.state == RecordingState.RECORDING,
                    )
                    .values(
                        state=RecordingState.FINALIZING,
                        ended_at=ended_at,
                        heartbeat_at=utcnow(),
                        bytes=writer.bytes_written,
                    )
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    await enqueue(
                        db,
                        FINALIZE,
                        {"recording_id": piece.recording_id},
                        conversation_id=piece.room,
                        unique=True,
                    )
                    # The transcription ahead sees the piece ended and stops, now rather than
                    # at its next look (nobody waits on a job that only postpones itself).
                    await wake(db, AHEAD, piece.room)
                else:
                    log.warning(
                        "recording %s was taken over while it was being recorded (a stalled "
                        "heartbeat?); what came after is not in its file",
                        piece.recording_id,
                    )
                await db.commit()
            piece.state = PieceState.CLOSED
        except Exception:
            # The row stays RECORDING with a heartbeat that now stops: recovery finalizes it.
            log.exception("recording %s: could not mark it finalizing", piece.recording_id)
            piece.state = PieceState.CLOSED
        finally:
            self._closing.discard(piece)

    def fail(self, piece: Piece, exc: BaseException) -> None:
        """A journal write failed: stop recording this piece, and say why in its row."""
        if piece.state in (PieceState.FAILED, PieceState.CLOSED, PieceState.CLOSING):
            return  # a closing piece's close meets the same error and reports it
        log.error("recording %s: writing failed: %s", piece.recording_id, exc)
        piece.state = PieceState.FAILED
        self._detach(piece)
        if piece.writer is not None:
            piece.writer.abandon()
        self.spawn(self._mark_failed(piece, exc))

    async def _mark_failed(self, piece: Piece, exc: BaseException) -> None:
        piece.state = PieceState.FAILED
        piece.early.clear()
        self._detach(piece)
        if piece.recording_id is None:
            return
        message = f"recording stopped: {exc}"
        if isinstance(exc, OSError) and exc.strerror:
            message = f"recording stopped: cannot write the journal: {exc.strerror}"
        try:
            async with self.node.db() as db:
                await db.execute(
                    update(Recording)
                    .where(Recording.id == piece.recording_id)
                    .values(state=RecordingState.FAILED, error=message, ended_at=utcnow())
                )
                await db.commit()
        except Exception:
            log.exception("recording %s: could not mark it failed", piece.recording_id)

    # ---- periodic work --------------------------------------------------------------------------

    def _live_writers(self) -> list[tuple[Piece, JournalWriter]]:
        return [
            (piece, piece.writer)
            for piece in self.pieces.values()
            if piece.state == PieceState.RECORDING and piece.writer is not None
        ]

    async def flush(self) -> None:
        """Hand every live journal's buffer to the OS (in a thread: disks can be slow)."""
        live = [(p, w) for p, w in self._live_writers() if w.pending_bytes]
        if not live:
            return

        def flush_all() -> list[tuple[Piece, OSError]]:
            failures = []
            for piece, writer in live:
                try:
                    writer.flush()
                except OSError as exc:
                    failures.append((piece, exc))
                except ValueError:
                    pass  # closed meanwhile: close() flushed it
            return failures

        async with self._flush_lock:
            failures = await asyncio.to_thread(flush_all)
        for piece, exc in failures:
            self.fail(piece, exc)

    async def heartbeat(self) -> None:
        """Tell other processes these pieces are alive (and how big they are)."""
        live = self._live_writers()
        if not live:
            return
        now = utcnow()
        async with self.node.db() as db:
            for piece, writer in live:
                await db.execute(
                    update(Recording)
                    .where(
                        Recording.id == piece.recording_id,
                        Recording.state == RecordingState.RECORDING,
                    )
                    .values(heartbeat_at=now, bytes=writer.bytes_written)
                )
            await db.commit()

    async def _recover(self) -> None:
        own = {p.recording_id for p in self.pieces.values() if p.recording_id is not None}
        own |= {p.recording_id for p in self._closing if p.recording_id is not None}
        try:
            await recover_orphans(self.node.db, self.settings, self.stale_after_s, exclude=own)
        except Exception:
            log.exception("recovering orphaned recordings failed; trying again later")

    def _keyframe_retries(self) -> None:
        now = time.monotonic()
        for piece in self.pieces.values():
            if (
                piece.video_waiting_since is not None
                and not piece.video_started
                and now - piece.last_keyframe_request > KEYFRAME_RETRY_S
            ):
                self.request_keyframe(piece)

    async def _periodic(self) -> None:
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + self.heartbeat_interval
        next_recovery = loop.time() + self.recovery_interval
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                self._keyframe_retries()
                if loop.time() >= next_heartbeat:
                    next_heartbeat = loop.time() + self.heartbeat_interval
                    await self.heartbeat()
                if loop.time() >= next_recovery:
                    next_recovery = loop.time() + self.recovery_interval
                    await self._recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recorder upkeep failed; it goes on")
