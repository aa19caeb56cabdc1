"""Captions as WebVTT (https://www.w3.org/TR/webvtt1/), one cue per caption with its speaker.

Each cue's text is a voice span, `<v Name>text`, so players and screen readers can say who
spoke. WebVTT cue text is a small markup language: `&`, `<` and `>` in names and text are
written as character references (a caption saying "a <b> tag" must not become bold, and `-->`
inside text would otherwise end the timing line), and line breaks are folded into spaces
because a blank line ends a cue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    speaker: str
    text: str


def timestamp(ms: int) -> str:
    """`HH:MM:SS.mmm` (hours always written, so cues past 99 minutes stay valid)."""
    ms = max(0, int(ms))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def escape(text: str) -> str:
    """Cue text: markup characters as references, all whitespace runs as one space."""
    return " ".join(text.split()).translate(_ESCAPES)


def render(cues: Iterable[Cue]) -> str:
    """A complete WebVTT file, cues sorted by start time (then end time)."""
    parts = ["WEBVTT", ""]
    for cue in sorted(cues, key=lambda c: (c.start_ms, c.end_ms)):
        text = escape(cue.text)
        if not text:
            continue
        # A cue must end after it starts; zero-length captions would be dropped by players.
        end = max(cue.end_ms, cue.start_ms + 1)
        speaker = escape(cue.speaker) or "?"
        parts += [f"{timestamp(cue.start_ms)} --> {timestamp(end)}", f"<v {speaker}>{text}", ""]
    return "\n".join(parts) + "\n"
