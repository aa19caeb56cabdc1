"""The transcript as downloadable files: SubRip (SRT), JSON and plain text.

WebVTT lives in junto.speech.webvtt (shared with the live captions). Every format is rendered
from the transcript as it is now (with the hosts' corrections), from `store.View.segments`:
dicts with `start_ms`, `end_ms`, `speaker` ({"id", "name"} or None), `text` and `words`
([[start_ms, end_ms, word], ...]); times are on the conversation's timeline, which is also the
composite video's, so a subtitle file lines up with the downloaded video.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from junto.speech import words as wording

JSON_SCHEMA_VERSION = 1


def srt_time(ms: int) -> str:
    """00:01:02,345 (SRT uses a comma before the milliseconds)."""
    ms = max(0, int(ms))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def clock(ms: int) -> str:
    """00:01:02 for the plain-text transcript."""
    seconds = max(0, int(ms)) // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _one_line(text: str) -> str:
    # A blank line ends an SRT cue, so a cue's text must not contain one; collapse all
    # whitespace (corrections may contain newlines).
    return " ".join(text.split())


def _speaker_name(segment: dict[str, Any]) -> str:
    speaker = segment.get("speaker")
    return str(speaker["name"]) if speaker else ""


def to_srt(segments: Sequence[dict[str, Any]]) -> str:
    """One numbered cue per segment, "Name: words" (SRT has no voice tag)."""
    cues = []
    number = 0
    for seg in segments:
        text = _one_line(str(seg["text"]))
        if not text:
            continue
        number += 1
        start = int(seg["start_ms"])
        # A cue must not end before it starts (players drop such cues).
        end = max(start + 1, int(seg["end_ms"]))
        name = _speaker_name(seg)
        line = f"{_one_line(name)}: {text}" if name else text
        cues.append(f"{number}\n{srt_time(start)} --> {srt_time(end)}\n{line}\n")
    return "\n".join(cues)


def to_text(title: str, segments: Sequence[dict[str, Any]]) -> str:
    """A readable transcript: the title, then "[00:01:02] Name: words" paragraphs."""
    lines = [_one_line(title), ""]
    for seg in segments:
        text = _one_line(str(seg["text"]))
        if not text:
            continue
        name = _one_line(_speaker_name(seg)) or "Unknown speaker"
        lines.append(f"[{clock(int(seg['start_ms']))}] {name}: {text}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def to_json(conversation: dict[str, Any], segments: Sequence[dict[str, Any]]) -> str:
    """The transcript with word timings, for programs (schema version 1):

    {"version": 1, "conversation": {"slug", "title", "language", "url"},
     "speakers": [{"id", "name"}],
     "segments": [{"start_ms", "end_ms", "speaker": {"id", "name"} | null, "text",
                   "words": [{"start_ms", "end_ms", "text", "joins"}]}]}

    `joins` (added within version 1): the word continues the one before with no space ("4"
    then ",500" reads "4,500"), so a program can rebuild the text from the words.
    """
    speakers: dict[int, dict[str, Any]] = {}
    out_segments = []
    for seg in segments:
        speaker = seg.get("speaker")
        if speaker:
            speakers.setdefault(int(speaker["id"]), {"id": speaker["id"], "name": speaker["name"]})
        words = seg.get("words") or []
        out_segments.append(
            {
                "start_ms": int(seg["start_ms"]),
                "end_ms": int(seg["end_ms"]),
                "speaker": {"id": speaker["id"], "name": speaker["name"]} if speaker else None,
                "text": seg["text"],
                "words": [
                    {"start_ms": int(w[0]), "end_ms": int(w[1]), "text": str(w[2]), "joins": joins}
                    for w, joins in zip(words, wording.flags(words), strict=True)
                ],
            }
        )
    document = {
        "version": JSON_SCHEMA_VERSION,
        "conversation": conversation,
        "speakers": list(speakers.values()),
        "segments": out_segments,
    }
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"
