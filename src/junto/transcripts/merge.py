"""Merging every speaker's words into one transcript of speaker turns, in time order.

Each recording piece was transcribed on its own (times relative to the piece's start). On the
conversation's timeline (ms since it went live) the words of all speakers are sorted by start,
and a new segment begins whenever the speaker changes, the speaker pauses for a second or more,
or the segment grows too long to read or seek comfortably. Sorting all words first means a turn
of A that spans a remark of B is split around it, so segments read in the order things were said.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from junto.speech import words as wording

PAUSE_MS = 1000  # a pause this long starts a new segment even for the same speaker
MAX_SEGMENT_MS = 30_000  # a segment never grows beyond this
# Past this length a segment ends at the next sentence end, so long monologues split cleanly.
SOFT_SEGMENT_MS = 20_000
_SENTENCE_END = (".", "?", "!", "…")


@dataclass(frozen=True)
class TimedWord:
    """A word on the conversation's timeline, attributed to a speaker. `joins`: it continues
    the word before (",500" after "4"); None when the track was stored without that knowledge."""

    start_ms: int
    end_ms: int
    text: str
    user_id: int
    joins: bool | None = None


@dataclass
class Segment:
    """One speaker turn: consecutive words of one speaker without a long pause."""

    user_id: int
    words: list[TimedWord] = field(default_factory=list)

    @property
    def start_ms(self) -> int:
        return self.words[0].start_ms

    @property
    def end_ms(self) -> int:
        return max(w.end_ms for w in self.words)

    def _resolved(self) -> list[tuple[str, bool]]:
        return wording.resolve((w.text, w.joins) for w in self.words)

    @property
    def text(self) -> str:
        return wording.join_words(self._resolved())

    def entries(self) -> list[list[Any]]:
        """The words as stored in TranscriptSegment: [[start_ms, end_ms, word, joins], ...]."""
        return [
            [w.start_ms, w.end_ms, text, joins]
            for w, (text, joins) in zip(self.words, self._resolved(), strict=True)
        ]


@dataclass(frozen=True)
class Piece:
    """One transcribed recording piece: whose it is, where it starts on the timeline, its words
    as stored in TrackTranscript ([[start_s, end_s, word, probability], ...])."""

    user_id: int
    offset_ms: int
    words: Sequence[Sequence[object]]


def timeline_words(pieces: Iterable[Piece]) -> list[TimedWord]:
    """All words of all pieces on the conversation's timeline, sorted by start (then speaker)."""
    out: list[TimedWord] = []
    for piece in pieces:
        # Tracks stored since words keep Whisper's leading spaces say which pieces belong
        # together; older ones (every word stripped) leave it to the rules (None).
        spaced = any(str(entry[2])[:1].isspace() for entry in piece.words)
        for entry in piece.words:
            start_s, end_s, text = entry[0], entry[1], entry[2]
            assert isinstance(start_s, int | float) and isinstance(end_s, int | float)
            word, joins = wording.from_piece(str(text))
            if not word:
                continue
            start = piece.offset_ms + round(float(start_s) * 1000)
            end = max(start, piece.offset_ms + round(float(end_s) * 1000))
            out.append(
                TimedWord(
                    max(0, start), max(0, end), word, piece.user_id, joins if spaced else None
                )
            )
    out.sort(key=lambda w: (w.start_ms, w.end_ms, w.user_id))
    return out


def segments(words: Iterable[TimedWord]) -> list[Segment]:
    """Cut time-ordered words into speaker segments (see the module docstring)."""
    out: list[Segment] = []
    current: Segment | None = None
    for word in words:
        if current is None or _starts_new(current, word):
            current = Segment(word.user_id)
            out.append(current)
        current.words.append(word)
    return out


def _starts_new(current: Segment, word: TimedWord) -> bool:
    if word.user_id != current.user_id:
        return True
    last = current.words[-1]
    if word.start_ms - last.end_ms >= PAUSE_MS:
        return True
    length = max(word.end_ms, current.end_ms) - current.start_ms
    if length > MAX_SEGMENT_MS:
        return True
    return current.end_ms - current.start_ms >= SOFT_SEGMENT_MS and last.text.endswith(
        _SENTENCE_END
    )
