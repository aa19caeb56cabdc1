"""The packet journal: an append-only file of one recording piece's encoded packets.

A journal is what survives a crash. The recorder appends every packet of one speaker's source as
it arrives (a memory append on the event loop, microseconds) and flushes to the OS at least every
second; the OS page cache survives the process being killed, so a SIGKILL loses at most the
packets of the last flush interval. After the piece ends (or its process died), a job remuxes the
journal into WebM (junto.recording.webm) and deletes it.

Layout (little-endian)::

    b"JUNTO-JOURNAL 1\\n"                    magic and format version
    {"recording_id": ..., ...}\\n             one JSON line of metadata (JournalMeta)
    record*                                  each: RECORD header + payload

    RECORD = marker u8 (0xA5) | kind u8 (0 audio, 1 video) | flags u8 (bit 0 key frame,
             bit 1 no pts) | reserved u8 | length u32 | wall f64 (arrival, Unix seconds) |
             pts i64 | time base num u32 | time base den u32 | crc32 u32 (header fields + payload)

The reader stops at the first record that is incomplete or fails its checks (a torn or damaged
tail) and never raises for it: everything before it is intact, which is the point.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Generator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

log = logging.getLogger("junto.recording")

MAGIC = b"JUNTO-JOURNAL 1\n"
VERSION = 1
MARKER = 0xA5
AUDIO, VIDEO = 0, 1
KINDS = {"audio": AUDIO, "video": VIDEO}
KIND_NAMES = {AUDIO: "audio", VIDEO: "video"}
FLAG_KEYFRAME = 0x01
FLAG_NO_PTS = 0x02
# marker, kind, flags, reserved, length, wall, pts, tb num, tb den; the crc32 follows.
_FIELDS = struct.Struct("<BBBBIdqII")
_CRC = struct.Struct("<I")
HEADER_SIZE = _FIELDS.size + _CRC.size
# No VP8 frame or Opus packet comes near this; a larger length is corruption, not data.
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_META = 64 * 1024
# Buffered data waiting for a flush that does not come back (a hung or very slow disk): past
# this (about a minute of video), appending fails rather than grow memory or block the loop.
MAX_PENDING_BYTES = 16 * 1024 * 1024


class JournalError(Exception):
    """The journal cannot be read at all (missing, or its header is not a journal's)."""


class JournalBacklog(OSError):
    """Too much is waiting to be written: the disk is not keeping up."""


@dataclass(frozen=True)
class JournalMeta:
    """What the journal's header says about the piece."""

    recording_id: int
    conversation_id: int
    user_id: int
    source: str
    started_at: str  # ISO 8601 wall clock of the piece's first packet

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode() + b"\n"


class JournalRecord(NamedTuple):
    kind: str  # "audio" | "video"
    keyframe: bool
    wall: float  # arrival, Unix seconds
    pts: int | None  # on the RTP clock; None when the packet had none
    time_base: Fraction
    data: bytes


Records = Generator[JournalRecord, None, None]


class JournalWriter:
    """Appends records to one journal file.

    `append` only copies the packet into a memory buffer, so it is cheap enough for the media
    forwarding path; `flush` hands the buffer to the OS. `flush` may run on another thread (the
    recorder flushes off the event loop): a small lock guards the buffer swap, and a second lock
    keeps writes in order.
    """

    def __init__(self, path: Path, meta: JournalMeta) -> None:
        self.path = path
        self.meta = meta
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: a journal is never appended to by two writers, nor reopened after a crash.
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        self._buf = bytearray(MAGIC + meta.to_json())
        self._buf_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._abandoned = False
        self.records = 0
        self.bytes_written = 0  # handed to the OS
        self.last_wall: float | None = None
        self.flush()

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def append(
        self,
        kind: str,
        packet: Any,
        pts: int | None,
        time_base: Fraction,
        keyframe: bool,
        wall: float,
    ) -> None:
        """Buffer one packet (`packet` is anything with the buffer protocol: bytes, av.Packet).

        Never touches the disk; raises JournalBacklog if earlier data is still not written."""
        flags = (FLAG_KEYFRAME if keyframe else 0) | (FLAG_NO_PTS if pts is None else 0)
        payload = memoryview(packet).cast("B")
        fields = _FIELDS.pack(
            MARKER,
            KINDS[kind],
            flags,
            0,
            len(payload),
            wall,
            0 if pts is None else pts,
            time_base.numerator,
            time_base.denominator,
        )
        crc = zlib.crc32(payload, zlib.crc32(fields))
        with self._buf_lock:
            buf = self._buf
            if len(buf) > MAX_PENDING_BYTES:
                raise JournalBacklog(
                    errno.EIO,
                    f"{len(buf) // 1_000_000} MB not yet written: the disk is not keeping up",
                )
            buf += fields
            buf += _CRC.pack(crc)
            buf += payload
        self.records += 1
        self.last_wall = wall

    def flush(self) -> int:
        """Write what is buffered to the OS (not fsync: the page cache survives a process
        crash). Returns the number of bytes written. Raises OSError (e.g. ENOSPC)."""
        with self._io_lock:
            with self._buf_lock:
                data, self._buf = self._buf, bytearray()
            try:
                if not data or self._abandoned:
                    return 0
                if self._fd is None:
                    raise ValueError("the journal is closed")
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                self.bytes_written += len(data)
                return len(data)
            finally:
                if self._abandoned:  # abandoned while this write was under way
                    self._close_fd()

    def close(self) -> None:
        """Flush, fsync and close. Idempotent; the file is closed even if the flush fails."""
        with self._io_lock:
            fd = self._fd
        if fd is None:
            return
        try:
            self.flush()
            os.fsync(fd)
        finally:
            with self._io_lock:
                self._fd = None
            os.close(fd)

    def abandon(self) -> None:
        """Drop what is buffered and close, without waiting for the disk (after a write
        failed, or hung): if a flush is under way, that flush closes the file when it ends."""
        with self._buf_lock:
            self._buf = bytearray()
            self._abandoned = True
        if self._io_lock.acquire(blocking=False):
            try:
                self._close_fd()
            finally:
                self._io_lock.release()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                log.debug("closing an abandoned journal failed", exc_info=True)


def read_meta(fh: BinaryIO, path: Path) -> JournalMeta:
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise JournalError(f"{path} is not a recording journal (expected {MAGIC!r} at the start)")
    line = fh.readline(MAX_META)
    if not line.endswith(b"\n"):
        raise JournalError(f"{path} has a truncated or oversized metadata line")
    try:
        raw = json.loads(line)
        return JournalMeta(
            recording_id=int(raw["recording_id"]),
            conversation_id=int(raw["conversation_id"]),
            user_id=int(raw["user_id"]),
            source=str(raw["source"]),
            started_at=str(raw["started_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise JournalError(f"{path} has unreadable metadata: {exc}") from exc


def _records(fh: BinaryIO, path: Path) -> Records:
    try:
        index = 0
        while True:
            head = fh.read(HEADER_SIZE)
            if not head:
                return
            if len(head) < HEADER_SIZE:
                log.info("%s: ends in a torn record header after %d records", path, index)
                return
            marker, kind, flags, _r, length, wall, pts, num, den = _FIELDS.unpack_from(head)
            if marker != MARKER or kind not in KIND_NAMES or length > MAX_PAYLOAD or den == 0:
                log.warning("%s: damaged record %d (bad header); stopping there", path, index)
                return
            data = fh.read(length)
            if len(data) < length:
                log.info("%s: ends in a torn record after %d records", path, index)
                return
            (crc,) = _CRC.unpack_from(head, _FIELDS.size)
            if zlib.crc32(data, zlib.crc32(head[: _FIELDS.size])) != crc:
                log.warning("%s: damaged record %d (checksum); stopping there", path, index)
                return
            yield JournalRecord(
                KIND_NAMES[kind],
                bool(flags & FLAG_KEYFRAME),
                wall,
                None if flags & FLAG_NO_PTS else pts,
                Fraction(num, den),
                data,
            )
            index += 1
    finally:
        fh.close()


def read_journal(path: Path) -> tuple[JournalMeta, Records]:
    """Open a journal: its metadata now (JournalError if the header is unreadable) and an
    iterator over its intact records, which stops quietly at a torn or damaged tail (and
    closes the file when exhausted or closed)."""
    try:
        fh = open(path, "rb")  # closed by the records iterator
    except OSError as exc:
        raise JournalError(f"cannot open the journal {path}: {exc.strerror}") from exc
    try:
        meta = read_meta(fh, path)
    except BaseException:
        fh.close()
        raise
    return meta, _records(fh, path)


def last_wall(path: Path) -> float | None:
    """The arrival time of the journal's last intact record (None if it has none)."""
    _meta, records = read_journal(path)
    wall = None
    for record in records:
        wall = record.wall
    return wall
