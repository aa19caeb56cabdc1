"""A conversation in turns, one speech file per speaker, with the time of every line.

Each speaker's microphone file holds the whole conversation's timeline: their own lines where
they speak, silence while the others speak, so that speakers who open their microphones at the
same moment talk in turn. Every file starts with LEAD seconds of silence, which covers the time
between the microphone opening and the publishing connection being up (nothing is recorded
before that).

Files are 48 kHz 16-bit mono WAV (what Chromium's --use-file-for-fake-audio-capture plays) and
the line times are measured from the synthesised audio, so a test knows when each word was said
relative to the start of the file.
"""

from __future__ import annotations

import json
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from helpers import need_tool

RATE = 48_000
LEAD = 2.5  # s of silence before the first line
GAP = 1.2  # s between turns
NORMALISE = ("norm", "-3", "rate", str(RATE))


@dataclass(frozen=True)
class Line:
    start: float  # s from the start of the file
    end: float
    text: str


@dataclass(frozen=True)
class Track:
    """One speaker's microphone file and the lines in it."""

    speaker: str
    path: Path
    lines: tuple[Line, ...]
    seconds: float

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    def said_before(self, seconds: float) -> str:
        """The lines that had ended `seconds` into the file."""
        return " ".join(line.text for line in self.lines if line.end <= seconds)


VOICES = {"ana": "en-us", "ben": "en+f3", "cy": "en-us+m3"}

# Lines that espeak-ng says clearly enough for Whisper tiny.en, so that a test measures what
# the live path loses, not how espeak-ng pronounces English. Measured on these WAV files, with
# no WebRTC: cut by the live VAD and read one utterance at a time like the captions, 2.5 % WER;
# the whole file with beam 5 like the final pass, about the same. (A first script had lines
# such as "Water brought trade", "the old docks" and "the water was still there", which come out
# as "Wager", "the old dogs" and "won't still air": 8-18 % WER offline, before any network.)
RIVERS: tuple[tuple[str, str], ...] = (
    ("ana", "Welcome to the stage. Today we talk about rivers and the cities built beside them."),
    ("ben", "Thank you for having me. I grew up on a river, so this is personal."),
    ("ana", "Rivers brought trade, and trade brought people. Bridges came later, much later."),
    ("ben", "Many towns forget the river when the money stops. But forgetting is not losing."),
    ("ana", "Now we have parks beside the river, and people swim again in summer."),
    ("ben", "When the old mills closed, the water was still there."),
)


def make_conversation(
    folder: Path,
    turns: tuple[tuple[str, str], ...] = RIVERS,
    wpm: int = 140,
    voices: dict[str, str] = VOICES,
) -> dict[str, Track]:
    """Synthesise `turns` (speaker, text) into one microphone file per speaker, each speaker
    with their espeak-ng voice from `voices`."""
    folder.mkdir(parents=True, exist_ok=True)
    speakers = sorted({speaker for speaker, _ in turns})
    parts: dict[str, list[Path]] = {s: [_silence(folder / "lead.wav", LEAD)] for s in speakers}
    lines: dict[str, list[Line]] = {s: [] for s in speakers}
    clock = LEAD
    for i, (speaker, text) in enumerate(turns):
        spoken = folder / f"turn{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voices[speaker], "-s", str(wpm), "-w", str(spoken), text],
            check=True,
            capture_output=True,
        )
        seconds = _seconds(spoken)
        quiet = _silence(folder / f"quiet{i}.wav", seconds)
        gap = _silence(folder / f"gap{i}.wav", GAP)
        for s in speakers:
            parts[s] += [spoken if s == speaker else quiet, gap]
        lines[speaker].append(Line(clock, clock + seconds, text))
        clock += seconds + GAP
    tracks = {}
    for s in speakers:
        out = folder / f"{s}.wav"
        # espeak-ng writes 22.05 kHz; sox joins, normalises to -3 dBFS and resamples.
        subprocess.run(
            ["sox", *map(str, parts[s]), "-b", "16", "-c", "1", str(out), *NORMALISE],
            check=True,
            capture_output=True,
        )
        tracks[s] = Track(s, out, tuple(lines[s]), _seconds(out))
    return tracks


def _seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def _silence(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(path), "trim", "0", f"{seconds}"],
        check=True,
        capture_output=True,
    )
    return path


def ffprobe_seconds(path: Path) -> float:
    """A media file's duration as ffprobe (Debian's ffmpeg package) reads it: an independent
    check that what the node wrote plays."""
    need_tool("ffprobe", "Debian package ffmpeg")
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out)["format"]["duration"])
