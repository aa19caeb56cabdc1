"""Journal → WebM: real VP8 and Opus packets come out as a file that decodes, on time."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from recording_support import (
    AUDIO_TB,
    HEIGHT,
    RTP_MOD,
    VIDEO_TB,
    WIDTH,
    Arrival,
    arrivals,
    ffmpeg_decodes,
    probe,
)

from helpers import need_tool
from junto.media.vp8 import vp8_dimensions
from junto.recording.journal import JournalError, JournalMeta, JournalWriter
from junto.recording.webm import NothingRecorded, journal_to_webm, opus_samples

WALL0 = 1_780_000_000.0


def journal(path: Path, packets: list[Arrival]) -> Path:
    meta = JournalMeta(1, 2, 3, "camera", datetime.fromtimestamp(WALL0, UTC).isoformat())
    writer = JournalWriter(path, meta)
    for a in packets:
        writer.append(a.kind, a.data, a.pts, a.time_base, a.keyframe, a.wall)
    writer.close()
    return path


def stream_starts(path: Path) -> dict[str, float]:
    """The time of each stream's first packet, in seconds."""
    starts: dict[str, float] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is not None and packet.stream.type not in starts:
                starts[packet.stream.type] = float(packet.pts * packet.time_base)
    return starts


def ffprobe_duration(path: Path) -> float:
    """The duration ffprobe (an independent reader) reports."""
    ffprobe = need_tool("ffprobe", "Debian package ffmpeg")
    out = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return float(json.loads(out)["format"]["duration"])


def check_playable(path: Path, seconds: float, *, video: bool = True, audio: bool = True) -> None:
    got = probe(path)
    assert abs(got.duration - seconds) < 0.2, got
    if video:
        assert got.video_frames >= int(seconds * 30) - 3, got
    if audio:
        assert got.audio_seconds > seconds - 0.25, got
        assert 0.15 < got.audio_peak < 0.35, "the 440 Hz tone at a quarter of full scale"
    assert ffmpeg_decodes(path) == ""
    assert abs(ffprobe_duration(path) - seconds) < 0.2


def test_vp8_and_opus_become_a_webm_that_decodes(tmp_path: Path) -> None:
    src = journal(tmp_path / "p.journal", arrivals(seconds=4.0, wall0=WALL0))
    out = tmp_path / "out" / "p.webm"
    began = time.perf_counter()
    info = journal_to_webm(src, out)
    took = time.perf_counter() - began
    print(f"remux: {4.0 / took:.0f}x real time ({took * 1000:.1f} ms for 4 s)")
    assert (info.has_audio, info.has_video) == (True, True)
    assert abs(info.duration_s - 4.0) < 0.1
    assert info.bytes == out.stat().st_size > 10_000
    assert info.started_at == datetime.fromtimestamp(WALL0, UTC)
    assert not (tmp_path / "out" / "p.webm.tmp").exists()
    check_playable(out, 4.0)
    with av.open(str(out)) as container:
        v = container.streams.video[0]
        a = container.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.width, v.codec_context.height) == (
            "vp8", WIDTH, HEIGHT,
        )  # fmt: skip
        assert a.codec_context.name == "opus"
        assert bytes(a.codec_context.extradata or b"")[:8] == b"OpusHead"


def test_random_rtp_starts_that_wrap_around_keep_time(tmp_path: Path) -> None:
    packets = arrivals(
        seconds=4.0,
        wall0=WALL0,
        video_rtp0=RTP_MOD - 90000,  # wraps after 1 s
        audio_rtp0=RTP_MOD - 96000,  # wraps after 2 s
    )
    assert any(a.pts < 90000 for a in packets if a.kind == "video"), "the test must wrap"
    src = journal(tmp_path / "p.journal", packets)
    info = journal_to_webm(src, tmp_path / "p.webm")
    assert abs(info.duration_s - 4.0) < 0.1
    check_playable(tmp_path / "p.webm", 4.0)


def test_a_republish_restarts_the_rtp_clock_and_time_follows_the_wall_clock(
    tmp_path: Path,
) -> None:
    """The speaker published again after 2 s, 1.5 s later: new random RTP starts."""
    packets = []
    for a in arrivals(seconds=4.0, wall0=WALL0):
        if a.wall - WALL0 >= 2.0 - 1e-6:
            # The same frame count, but a new clock origin, and 1.5 s later on the wall.
            step = 3000 if a.kind == "video" else 960
            base = 777_000_000 if a.kind == "video" else 5
            index = round((a.wall - WALL0 - 2.0) * (30 if a.kind == "video" else 50))
            a = replace(a, pts=(base + index * step) % RTP_MOD, wall=a.wall + 1.5)
        packets.append(a)
    packets.sort(key=lambda a: a.wall)
    src = journal(tmp_path / "p.journal", packets)
    info = journal_to_webm(src, tmp_path / "p.webm")
    assert abs(info.duration_s - 5.5) < 0.1
    got = probe(tmp_path / "p.webm")
    assert abs(got.duration - 5.5) < 0.2
    assert got.video_frames >= 117
    assert abs(got.audio_seconds - 4.0) < 0.25, "the gap holds no audio packets"
    assert ffmpeg_decodes(tmp_path / "p.webm") == ""


def test_video_that_starts_late_stays_aligned_with_audio(tmp_path: Path) -> None:
    packets = arrivals(seconds=3.0, wall0=WALL0, video_delay=0.5)
    info = journal_to_webm(journal(tmp_path / "p.journal", packets), tmp_path / "p.webm")
    starts = stream_starts(tmp_path / "p.webm")
    assert starts["audio"] == pytest.approx(0.0, abs=0.01)
    assert starts["video"] == pytest.approx(0.5, abs=0.01)
    assert abs(info.duration_s - 3.5) < 0.1


def test_leading_delta_frames_are_dropped_so_the_file_starts_decodable(tmp_path: Path) -> None:
    # Key frames at 0 s and 1 s; drop the first: recording joined mid-stream.
    packets = arrivals(seconds=2.0, wall0=WALL0, audio=False, keyframe_every=30)[1:]
    assert not packets[0].keyframe
    info = journal_to_webm(journal(tmp_path / "p.journal", packets), tmp_path / "p.webm")
    assert (info.has_audio, info.has_video) == (False, True)
    got = probe(tmp_path / "p.webm")
    assert got.streams == ("vp8",)
    assert got.video_frames == 30
    assert stream_starts(tmp_path / "p.webm")["video"] == 0.0
    assert info.started_at == datetime.fromtimestamp(WALL0 + 1.0, UTC), "t = 0 is what plays"
    assert ffmpeg_decodes(tmp_path / "p.webm") == ""


def test_audio_only(tmp_path: Path) -> None:
    packets = arrivals(seconds=2.0, wall0=WALL0, video=False)
    info = journal_to_webm(journal(tmp_path / "p.journal", packets), tmp_path / "p.webm")
    assert (info.has_audio, info.has_video) == (True, False)
    check_playable(tmp_path / "p.webm", 2.0, video=False)


def test_nothing_usable_is_reported_not_written(tmp_path: Path) -> None:
    deltas = [a for a in arrivals(seconds=1.0, wall0=WALL0, audio=False) if not a.keyframe]
    src = journal(tmp_path / "p.journal", deltas)
    with pytest.raises(NothingRecorded):
        journal_to_webm(src, tmp_path / "p.webm")
    assert not (tmp_path / "p.webm").exists()
    assert not (tmp_path / "p.webm.tmp").exists()
    (tmp_path / "bad.journal").write_bytes(b"garbage")
    with pytest.raises(JournalError):
        journal_to_webm(tmp_path / "bad.journal", tmp_path / "bad.webm")


def test_header_parsers() -> None:
    frames = arrivals(seconds=0.5, wall0=WALL0, audio=False)
    assert vp8_dimensions(frames[0].data) == (WIDTH, HEIGHT)
    assert vp8_dimensions(frames[1].data) is None, "a delta frame has no size"
    opus = [a for a in arrivals(seconds=0.5, wall0=WALL0, video=False)]
    assert {opus_samples(a.data) for a in opus} == {960}
    assert opus_samples(bytes([0b00011_0_11, 3])) == 3 * 2880  # SILK 60 ms, code 3, 3 frames
    assert opus_samples(b"") == 0
    assert AUDIO_TB.denominator == 48000 and VIDEO_TB.denominator == 90000
