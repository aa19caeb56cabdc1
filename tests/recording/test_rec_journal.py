"""The packet journal: what is written comes back, and a damaged tail costs only the tail."""

from __future__ import annotations

import logging
import os
import struct
import time
from fractions import Fraction
from pathlib import Path

import pytest
from recording_support import arrivals

from junto.recording.journal import (
    HEADER_SIZE,
    MAGIC,
    JournalBacklog,
    JournalError,
    JournalMeta,
    JournalWriter,
    last_wall,
    read_journal,
)

META = JournalMeta(
    recording_id=7,
    conversation_id=3,
    user_id=11,
    source="camera",
    started_at="2026-11-26T14:00:00.250000+00:00",
)


Row = tuple[str, bytes, int | None, Fraction, bool, float]


def write(path: Path, count: int | None = None) -> list[Row]:
    """Journal real packets; returns what was appended."""
    wrote: list[Row] = []
    writer = JournalWriter(path, META)
    for arrival in arrivals(seconds=2.0)[:count]:
        packet = arrival.packet()
        writer.append(arrival.kind, packet, packet.pts, packet.time_base, arrival.keyframe,
                      arrival.wall)  # fmt: skip
        wrote.append((arrival.kind, arrival.data, arrival.pts, arrival.time_base,
                      arrival.keyframe, arrival.wall))  # fmt: skip
    writer.close()
    return wrote


def read_all(path: Path) -> list[Row]:
    _meta, records = read_journal(path)
    return [(r.kind, r.data, r.pts, r.time_base, r.keyframe, r.wall) for r in records]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "recordings" / "3" / "7.journal"
    wrote = write(path)
    meta, _records = read_journal(path)
    assert meta == META
    back = read_all(path)
    assert back == wrote
    assert {r[0] for r in back} == {"audio", "video"}
    assert back[0][3] in (Fraction(1, 48000), Fraction(1, 90000))
    assert any(r[4] for r in back), "key frames keep their flag"
    assert last_wall(path) == wrote[-1][5]


def test_a_packet_without_pts_is_kept_as_such(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    writer = JournalWriter(path, META)
    writer.append("audio", b"\xfc\x01\x02", None, Fraction(1, 48000), False, 1.5)
    writer.close()
    [record] = list(read_journal(path)[1])
    assert (record.pts, record.data, record.wall) == (None, b"\xfc\x01\x02", 1.5)


def test_the_writer_never_overwrites_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    write(path, 3)
    with pytest.raises(FileExistsError):
        JournalWriter(path, META)
    assert len(read_all(path)) == 3


def test_flush_hands_data_to_the_os_before_close(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    writer = JournalWriter(path, META)
    writer.append("audio", b"x" * 100, 960, Fraction(1, 48000), False, 2.0)
    size_before = path.stat().st_size
    assert writer.flush() == HEADER_SIZE + 100
    assert path.stat().st_size == size_before + HEADER_SIZE + 100
    assert [r.data for r in read_journal(path)[1]] == [b"x" * 100], "readable while still open"
    writer.close()
    writer.close()  # idempotent


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5])
def test_a_torn_last_record_is_dropped_quietly(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "j.journal"
    wrote = write(path, 40)
    last_size = HEADER_SIZE + len(wrote[-1][1])
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - last_size + cut)
    assert read_all(path) == wrote[:-1]


def test_garbage_after_the_last_record_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.journal"
    wrote = write(path, 40)
    with open(path, "ab") as fh:
        fh.write(os.urandom(3000))
    with caplog.at_level(logging.WARNING, logger="junto.recording"):
        assert read_all(path) == wrote
    assert "damaged record 40" in caplog.text


def test_an_absurd_length_is_corruption_not_a_huge_read(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    wrote = write(path, 10)
    with open(path, "ab") as fh:
        # A plausible header whose length claims 3 GB.
        fh.write(struct.pack("<BBBBIdqII", 0xA5, 0, 0, 0, 3_000_000_000, 1.0, 0, 1, 48000))
        fh.write(b"\0" * 64)
    assert read_all(path) == wrote


def test_a_flipped_bit_in_a_payload_ends_the_journal_there(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    wrote = write(path, 30)
    offset = len(MAGIC) + len(META.to_json())
    for _kind, data, *_ in wrote[:20]:
        offset += HEADER_SIZE + len(data)
    with open(path, "r+b") as fh:  # the 21st record's first payload byte
        fh.seek(offset + HEADER_SIZE)
        byte = fh.read(1)[0]
        fh.seek(offset + HEADER_SIZE)
        fh.write(bytes([byte ^ 0x10]))
    assert read_all(path) == wrote[:20]


def test_an_unreadable_header_is_an_error(tmp_path: Path) -> None:
    not_journal = tmp_path / "x.journal"
    not_journal.write_bytes(b"RIFF....WEBPVP8 ")
    with pytest.raises(JournalError, match="not a recording journal"):
        read_journal(not_journal)
    torn_meta = tmp_path / "y.journal"
    torn_meta.write_bytes(MAGIC + b'{"recording_id": 7, "conv')
    with pytest.raises(JournalError, match="metadata"):
        read_journal(torn_meta)
    with pytest.raises(JournalError, match="cannot open"):
        read_journal(tmp_path / "missing.journal")


def test_appending_costs_microseconds(tmp_path: Path) -> None:
    """The tap appends on the media forwarding path: it must stay far below a packet's time."""
    packets = [(a.kind, a.packet(), a.keyframe, a.wall) for a in arrivals(seconds=4.0)] * 10
    writer = JournalWriter(tmp_path / "j.journal", META)
    began = time.perf_counter()
    for kind, packet, keyframe, wall in packets:
        writer.append(kind, packet, packet.pts, packet.time_base, keyframe, wall)
    per_packet_us = (time.perf_counter() - began) / len(packets) * 1e6
    writer.close()
    print(f"append: {per_packet_us:.2f} µs per packet")
    assert per_packet_us < 50


def test_a_disk_that_stops_keeping_up_fails_appends_instead_of_growing_memory(
    tmp_path: Path,
) -> None:
    writer = JournalWriter(tmp_path / "j.journal", META)
    frame = b"\0" * 1_000_000
    with pytest.raises(JournalBacklog, match="the disk is not keeping up"):
        for i in range(40):
            writer.append("video", frame, i * 3000, Fraction(1, 90000), i == 0, float(i))
    assert writer.pending_bytes < 18_000_000
    writer.abandon()
    assert writer.pending_bytes == 0
    assert writer.flush() == 0
    writer.close()  # nothing left to close: no error
