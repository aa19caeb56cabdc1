"""Synthetic speech for the fake microphones, and how to tell it apart from noise afterwards.

Each speaker of the media tests talks with their own espeak-ng voice (made into a 48 kHz 16-bit
mono WAV by sox, the format Chromium's `--use-file-for-fake-audio-capture` plays). We keep the
file's loudness envelope (RMS per 20 ms) so that audio recorded on the far side of the SFU can be
compared with what was said: the envelopes line up at some unknown delay (when the microphone
opened, network and jitter buffer), so we search for the best lag and ask for a strong Pearson
correlation of the syllable contour there, clearly stronger than with another speaker's file,
plus a speech-like on/off pattern (words and pauses, not a constant hum).

No speech recogniser is installed in this issue; faster-whisper arrives with live transcription
(the next issue), and then these tests can also assert recognised words (jiwer WER thresholds).
"""

from __future__ import annotations

import array
import itertools
import math
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from helpers import need_tool

HOP_MS = 20
RATE = 48_000
HOP = RATE * HOP_MS // 1000


@dataclass(frozen=True)
class Script:
    """What one speaker says: an espeak-ng voice and sentences with the pauses after them (s)."""

    voice: str
    lines: tuple[tuple[str, float], ...]
    words_per_minute: int = 150


@dataclass(frozen=True)
class Speech:
    path: Path
    envelope: list[float]  # RMS per 20 ms, full scale = 1.0
    seconds: float


# Different voices and different rhythms of sentences and pauses, so each speaker's envelope is
# their own: a recording of one must match that speaker's file, not the other's.
SCRIPTS: dict[str, Script] = {
    "ana": Script(
        "en-us",
        (
            ("Welcome to the stage.", 0.9),
            ("Today we talk about rivers, and the cities built beside them.", 1.3),
            ("Water brought trade, and trade brought people.", 0.7),
            ("Bridges came later, much later.", 1.6),
            ("Some cities turned their backs on the river for a century.", 1.0),
            ("Now they want it back.", 0.8),
            ("Parks replace the old docks, and people swim again in summer.", 1.4),
            ("What does a river owe a city, and what does a city owe its river?", 1.1),
            ("Let us hear from our guest.", 0.9),
            ("I will come back to floods at the end.", 1.5),
            ("Floods are the price of living close to water.", 1.0),
            ("Thank you all for listening so far.", 1.2),
        ),
    ),
    "ben": Script(
        "en-gb+f3",
        (
            ("Thank you for having me.", 1.2),
            ("I grew up on a houseboat, so this is personal.", 0.8),
            (
                "The river was our street, our garden, and sometimes our neighbour's rubbish tip.",
                1.5,
            ),
            ("Cities forget rivers when they stop earning money from them.", 0.7),
            ("That is the whole story, really.", 1.8),
            ("But forgetting is not the same as losing.", 0.9),
            ("A river waits.", 1.3),
            ("When the warehouses emptied, the water was still there.", 0.8),
            ("And people came down to look at it again.", 1.6),
            ("That is where the new parks began.", 1.0),
            ("I think we should ask who gets to live by the water now.", 1.2),
        ),
    ),
    "cy": Script(
        "en-us+m3",
        (
            ("Hello, can everyone hear me?", 1.1),
            ("I raised my hand because I live by a canal.", 0.8),
            ("Canals are rivers that were told what to do.", 1.4),
            (
                "They carried coal, then nothing, and now they carry bicycles along their banks.",
                0.9,
            ),
            ("I would like to ask about floods.", 1.5),
            ("Who pays when the water comes back?", 1.0),
            ("Thank you.", 1.2),
            ("I will listen now.", 1.0),
        ),
    ),
}


def make_speech(folder: Path, script: Script) -> Speech:
    """Speak `script` into `folder/speech.wav` (48 kHz, 16-bit, mono) and measure its envelope."""
    for tool in ("espeak-ng", "sox"):
        need_tool(tool, f"Debian package {tool}")
    folder.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = [_silence(folder / "lead.wav", 0.4)]
    for i, (text, pause) in enumerate(script.lines):
        spoken = folder / f"line{i}.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                script.voice,
                "-s",
                str(script.words_per_minute),
                "-w",
                str(spoken),
                text,
            ],
            check=True,
            capture_output=True,
        )
        parts += [spoken, _silence(folder / f"pause{i}.wav", pause)]
    out = folder / "speech.wav"
    # espeak-ng writes 22.05 kHz mono; sox joins the parts, normalises to -3 dBFS and resamples.
    subprocess.run(
        ["sox", *map(str, parts), "-b", "16", "-c", "1", str(out), "norm", "-3", "rate", str(RATE)],
        check=True,
        capture_output=True,
    )
    envelope = wav_envelope(out)
    return Speech(out, envelope, len(envelope) * HOP_MS / 1000)


def _silence(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds)],
        check=True,
        capture_output=True,
    )
    return path


def wav_envelope(path: Path) -> list[float]:
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(
                f"expected {RATE} Hz mono 16-bit, got {w.getframerate()} Hz "
                f"{w.getnchannels()} channel(s) {8 * w.getsampwidth()}-bit in {path}"
            )
        samples = array.array("h", w.readframes(w.getnframes()))
    return [
        math.sqrt(sum(s * s for s in samples[i : i + HOP]) / HOP) / 32768.0
        for i in range(0, len(samples) - HOP + 1, HOP)
    ]


# ---- comparing envelopes ---------------------------------------------------------------------

FLOOR_DB = -60.0


def to_db(envelope: list[float]) -> list[float]:
    """Loudness in dBFS with a floor: a log scale weighs quiet syllables like loud vowels (and
    survives automatic gain control), and the floor hides what noise the codec leaves in the
    silences."""
    return [max(FLOOR_DB, 20 * math.log10(v)) if v > 0 else FLOOR_DB for v in envelope]


def smooth(values: list[float], width: int = 3) -> list[float]:
    """A centred moving average."""
    half = width // 2
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out


def features(envelope: list[float]) -> list[float]:
    """The loudness contour of the words: dB, smoothed over 60 ms (a hop of jitter between the
    two clocks is forgiven), minus its own 1 s moving average. Subtracting the slow part removes
    the rhythm of phrases and pauses that all speech shares (against another speaker's file it
    alone correlates at 0.6 to 0.75), and keeps the syllables that belong to these words
    (measured: 0.4 at most against another file, above 0.8 through the SFU)."""
    db = smooth(to_db(envelope), 3)
    return [v - m for v, m in zip(db, smooth(db, 51), strict=True)]


def pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    if n == 0 or n != len(b):
        raise ValueError(f"expected two series of the same non-zero length, got {n} and {len(b)}")
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    if saa == 0 or sbb == 0:
        return 0.0
    return sab / math.sqrt(saa * sbb)


@dataclass(frozen=True)
class Match:
    r: float
    lag_s: float  # where in the source file the recording starts


def best_match(source: list[float], recorded: list[float]) -> Match:
    """The recording's best Pearson correlation with the source, over every start in the file.

    The recording may run past the end of the file (%noloop: then it is silence), so the source
    is padded with silence; a recording that starts before the file cannot happen (the far side
    hears nothing before the microphone opens)."""
    if not recorded:
        raise ValueError("expected a recorded envelope, got nothing")
    src = features(source + [0.0] * len(recorded))
    rec = features(recorded)
    n = len(rec)
    last = len(src) - n

    def r_at(lag: int) -> float:
        return pearson(src[lag : lag + n], rec)

    # Every other hop, then the neighbours of the best few: the peak is a few hops wide.
    coarse = sorted(((r_at(lag), lag) for lag in range(0, last + 1, 2)), reverse=True)[:5]
    best = Match(-1.0, 0.0)
    for _, centre in coarse:
        for lag in range(max(0, centre - 2), min(last, centre + 2) + 1):
            r = r_at(lag)
            if r > best.r:
                best = Match(r, lag * HOP_MS / 1000)
    return best


@dataclass(frozen=True)
class Activity:
    peak_db: float
    voiced_fraction: float  # share of 20 ms hops within 25 dB of the peak
    onsets: int  # silence → sound transitions (words and phrases)

    def speech_like(self) -> bool:
        return self.peak_db > -40 and 0.15 <= self.voiced_fraction <= 0.9 and self.onsets >= 3


def activity(envelope: list[float]) -> Activity:
    db = smooth(to_db(envelope), 5)  # 100 ms: counts words and phrases, not syllables
    peak = max(db, default=FLOOR_DB)
    voiced = [v > peak - 25 for v in db]
    onsets = sum(1 for a, b in itertools.pairwise(voiced) if b and not a)
    fraction = sum(voiced) / len(voiced) if voiced else 0.0
    return Activity(peak, fraction, onsets)
