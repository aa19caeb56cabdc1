"""A transcript as sentences, each with its speaker and exact times from the words' timings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from junto.speech.words import join_stored

# Whisper punctuates; a sentence ends at . ? ! (optionally followed by a closing quote).
_END = re.compile(r"[.?!…][\"')\]]*$")
# A full stop after these (or after an initial, "J.") does not end the sentence: "Dr. Okafor
# will send the plan." is one sentence, whose action item is Okafor's.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st sr jr mt vs e.g i.e approx fig gen gov lt col sgt".split()
)
MAX_WORDS = 40  # a run-on without punctuation is cut here, so no "sentence" spans minutes


@dataclass(frozen=True)
class Sentence:
    text: str
    start_ms: int
    end_ms: int
    speaker_id: int | None
    seq: int  # the transcript segment it comes from


@dataclass(frozen=True)
class Segment:
    """The part of a transcript segment that sentences need."""

    seq: int
    speaker_id: int | None
    words: list[list[Any]]  # [[start_ms, end_ms, word, joins], ...] (joins: see speech.words)


def segments_from_rows(rows: Iterable[Any]) -> list[Segment]:
    """TranscriptSegment rows (with `seq`, `user_id`, JSON `words`) as Segments."""
    return [Segment(r.seq, r.user_id, json.loads(r.words)) for r in rows]


def split(segments: Sequence[Segment]) -> list[Sentence]:
    out: list[Sentence] = []
    for seg in segments:
        run: list[list[Any]] = []
        for word in seg.words:
            if not str(word[2]).strip():
                continue
            run.append(word)
            text = str(word[2])
            if (_END.search(text) and not _abbreviation(text)) or len(run) >= MAX_WORDS:
                out.append(_sentence(run, seg))
                run = []
        if run:
            out.append(_sentence(run, seg))
    return out


def _abbreviation(word: str) -> bool:
    if not word.endswith("."):
        return False
    stem = word[:-1].lower()
    return stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha() and stem != "i")


def _sentence(run: list[list[Any]], seg: Segment) -> Sentence:
    text = join_stored(run)
    return Sentence(text, int(run[0][0]), int(run[-1][1]), seg.speaker_id, seg.seq)


def word_count(text: str) -> int:
    return len(re.findall(r"[\w']+", text))
