"""A journal writer killed with SIGKILL mid-stream loses at most its last flush interval.

The writer runs in a child process exactly as the recorder drives it (packets appended as they
"arrive" in real time, a flush every 0.5 s); the test kills it without warning and then reads
what the OS kept, and turns it into a playable WebM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recording_support import probe

from junto.recording.journal import read_journal
from junto.recording.webm import journal_to_webm

HERE = Path(__file__).resolve().parent

CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
from recording_support import arrivals
from junto.recording.journal import JournalMeta, JournalWriter

packets = arrivals(seconds=3.0)
writer = JournalWriter(Path({path!r}), JournalMeta(1, 2, 3, "camera", "2026-11-26T14:00:00+00:00"))
print("ready", flush=True)
t0 = time.time()
offset = t0 - packets[0].wall
next_flush = t0 + 0.5
for a in packets:
    while time.time() < a.wall + offset:
        time.sleep(0.002)
    p = a.packet()
    writer.append(a.kind, p, p.pts, p.time_base, a.keyframe, time.time())
    if time.time() >= next_flush:
        writer.flush()
        next_flush += 0.5
print("finished", flush=True)  # not reached: the test kills it first
time.sleep(30)
"""


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(here=str(HERE), path=str(path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        killed_at = time.time()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL

    _meta, records = read_journal(path)
    kept = list(records)
    first, last = kept[0].wall, kept[-1].wall
    lost = killed_at - last
    print(f"SIGKILL after {killed_at - first:.2f} s of media: lost the last {lost:.2f} s")
    assert lost <= 1.0
    assert {r.kind for r in kept} == {"audio", "video"}

    info = journal_to_webm(path, tmp_path / "j.webm")
    got = probe(tmp_path / "j.webm")
    assert abs(got.duration - (last - first)) < 0.2
    assert abs(info.duration_s - got.duration) < 0.1
    assert got.video_frames > 30 and got.audio_seconds > 1.0
