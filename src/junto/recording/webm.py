"""Journal → WebM: remux a piece's VP8 and Opus packets into a playable file, without decoding.

Timing. Every packet carries its RTP timestamp and its arrival wall clock. Within a track the
RTP clock is exact (it is the sender's capture clock), so a packet's time is its RTP distance from
an anchor. The anchor is the track's first packet, placed at its arrival relative to the piece's
start (the first packet of either track): that aligns audio with video, and the file's t = 0 with
the piece's `started_at`. When the RTP clock and the wall clock disagree by more than a second,
the clock restarted (the speaker published again) or jumped, and the track re-anchors on the
wall clock. RTP timestamps are 32-bit and wrap; they are unwrapped first.

Matroska stores milliseconds; each stream's timestamps are kept strictly increasing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from junto.media.vp8 import vp8_dimensions
from junto.recording.journal import HEADER_SIZE, JournalRecord, read_journal

log = logging.getLogger("junto.recording")

MS = Fraction(1, 1000)
# Past this much disagreement between RTP time and arrival time, the RTP clock is not to be
# trusted (a restarted publisher) and the track re-anchors on arrival time.
REANCHOR_S = 1.0
RTP_MOD = 1 << 32
OPUS_RATE = 48000


@dataclass(frozen=True)
class WebmInfo:
    duration_s: float
    has_audio: bool
    has_video: bool
    bytes: int
    started_at: datetime  # wall clock of t = 0 (the piece's first packet)
    packets: int = 0


class NothingRecorded(Exception):
    """The journal holds no usable packet."""


def opus_samples(packet: bytes) -> int:
    """Samples (at 48 kHz) in one Opus packet, from its TOC byte (RFC 6716 section 3.1)."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config & 3]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config & 1]
    else:  # CELT: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config & 3]
    code = toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        count = packet[1] & 0x3F if len(packet) > 1 else 1
    return frame * count


class _TrackClock:
    """Maps one track's RTP timestamps to seconds since the piece's start (see module doc)."""

    def __init__(self, origin_wall: float) -> None:
        self.origin = origin_wall
        self.last_raw: int | None = None
        self.extended = 0
        self.anchor_ext = 0
        self.anchor_s = 0.0
        self.last_ms = -1

    def _unwrap(self, raw: int) -> int:
        if self.last_raw is None:
            self.extended = raw
        elif 0 <= raw < RTP_MOD and 0 <= self.last_raw < RTP_MOD:
            delta = (raw - self.last_raw) % RTP_MOD
            if delta >= RTP_MOD // 2:
                delta -= RTP_MOD  # a step back (reordering, or a restart caught below)
            self.extended += delta
        else:
            self.extended += raw - self.last_raw
        self.last_raw = raw
        return self.extended

    def time_ms(self, record: JournalRecord) -> int:
        arrival = record.wall - self.origin
        if record.pts is None:
            t = arrival
        else:
            first = self.last_raw is None
            ext = self._unwrap(record.pts)
            if first:
                self.anchor_ext, self.anchor_s = ext, arrival
            t = self.anchor_s + float((ext - self.anchor_ext) * record.time_base)
            if abs(t - arrival) > REANCHOR_S:
                log.info("re-anchoring a %s track at %.3f s (RTP clock off by %.3f s)",
                         record.kind, arrival, t - arrival)  # fmt: skip
                self.anchor_ext, self.anchor_s, t = ext, arrival, arrival
        # Strictly increasing, on Matroska's millisecond grid.
        ms = max(round(t * 1000), self.last_ms + 1, 0)
        self.last_ms = ms
        return ms


def _usable(records: Iterator[JournalRecord]) -> Iterator[JournalRecord]:
    """Drops video before its first key frame: a file must start decodable."""
    video_started = False
    for record in records:
        if record.kind == "video" and not video_started:
            if not (record.keyframe and vp8_dimensions(record.data)):
                continue
            video_started = True
        if record.data:
            yield record


def journal_to_webm(
    journal_path: Path,
    webm_path: Path,
    progress: Callable[[float], None] | None = None,
    *,
    audio_only: bool = False,
) -> WebmInfo:
    """Remux a journal into a WebM file (written to a temporary name, then renamed).

    `audio_only` leaves the video out (a snapshot of a piece still being recorded, for its
    transcript: junto.transcripts.ahead); the timing is the same as the whole file's, since
    the video's first packet still counts for the piece's t = 0.

    Raises JournalError if the journal is unreadable, NothingRecorded if it holds no usable
    packet. `progress(fraction)` is called now and then with how far through the journal it is.
    """
    meta, records = read_journal(journal_path)
    total = max(1, journal_path.stat().st_size)
    # Two passes over the file: the first learns which tracks exist and the video's size, so
    # the container's header is right before any packet is written.
    has_audio = False
    dimensions: tuple[int, int] | None = None
    count = 0
    for record in _usable(records):
        count += 1
        if record.kind == "audio":
            has_audio = True
        elif dimensions is None:
            dimensions = vp8_dimensions(record.data)
        if has_audio and dimensions is not None:
            break
    if audio_only:
        dimensions = None
    records.close()
    if count == 0:
        raise NothingRecorded(f"{journal_path} holds no usable packet")

    webm_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = webm_path.with_name(webm_path.name + ".tmp")
    _meta, records = read_journal(journal_path)
    done = 0
    packets = 0
    end_ms = 0
    started_at: datetime | None = None
    try:
        with av.open(str(tmp), "w", format="webm") as out:
            video: Any = None
            audio: Any = None
            if dimensions is not None:
                # The encoder is never fed: opening it (at the header) only fills the stream's
                # parameters the way a muxer expects.
                video = out.add_stream("libvpx", rate=30)
                video.width, video.height = dimensions
                video.pix_fmt = "yuv420p"
            if has_audio:
                # libopus, opened at the header, writes the OpusHead (CodecPrivate) Matroska
                # needs: version 1, 2 channels (WebRTC Opus is always signalled as stereo),
                # pre-skip 312, 48 kHz.
                audio = out.add_stream("libopus", rate=OPUS_RATE)
                audio.layout = "stereo"
            clocks: dict[str, _TrackClock] = {}
            last_duration = {"audio": 20, "video": 33}  # ms
            previous: dict[str, int] = {}
            origin: float | None = None
            for record in _usable(records):
                done += HEADER_SIZE + len(record.data)
                stream = audio if record.kind == "audio" else video
                if stream is None and not (audio_only and record.kind == "video"):
                    continue
                if origin is None:
                    origin = record.wall
                    started_at = datetime.fromtimestamp(origin, UTC)
                if stream is None:
                    continue  # left out, but it set t = 0 above, as in the whole file
                clock = clocks.get(record.kind)
                if clock is None:
                    clock = clocks[record.kind] = _TrackClock(origin)
                ms = clock.time_ms(record)
                if record.kind == "audio":
                    samples = opus_samples(record.data)
                    duration = round(samples / 48) if samples else last_duration["audio"]
                else:
                    # A video frame lasts until the next; the last one as long as the one before.
                    gap = ms - previous.get("video", ms - last_duration["video"])
                    duration = gap if 0 < gap < 1000 else last_duration["video"]
                last_duration[record.kind] = duration
                previous[record.kind] = ms
                packet = av.Packet(record.data)
                packet.stream = stream
                packet.time_base = MS
                packet.pts = packet.dts = ms
                packet.duration = max(1, duration)
                if record.keyframe and record.kind == "video":
                    packet.is_keyframe = True
                out.mux(packet)
                packets += 1
                end_ms = max(end_ms, ms + duration)
                if progress is not None and packets % 500 == 0:
                    progress(min(1.0, done / total))
        os.replace(tmp, webm_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if started_at is None:
        started_at = datetime.fromisoformat(meta.started_at)
    if progress is not None:
        progress(1.0)
    return WebmInfo(
        duration_s=end_ms / 1000,
        has_audio=has_audio,
        has_video=dimensions is not None,
        bytes=webm_path.stat().st_size,
        started_at=started_at,
        packets=packets,
    )
