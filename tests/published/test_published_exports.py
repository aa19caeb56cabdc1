"""The transcript exports as pure functions: time formats, awkward text, empty segments."""

from __future__ import annotations

import json
import re
from typing import Any

from junto.transcripts import exports


def seg(start: int, end: int, text: str, name: str | None = "Ana") -> dict[str, Any]:
    words = [[start, end, w] for w in text.split()]
    speaker = {"id": 1, "name": name} if name else None
    return {"start_ms": start, "end_ms": end, "text": text, "words": words, "speaker": speaker}


def test_srt_times_numbering_and_text() -> None:
    assert exports.srt_time(0) == "00:00:00,000"
    assert exports.srt_time(3_723_456) == "01:02:03,456"
    assert exports.srt_time(-5) == "00:00:00,000"
    text = exports.to_srt(
        [
            seg(1000, 2500, "Hello\n\nthere"),  # a blank line would end the cue
            seg(3000, 3000, "   "),  # nothing said: no cue, numbering stays dense
            seg(4000, 3990, "Backwards end", name=None),  # an end before the start
        ]
    )
    cues = text.strip().split("\n\n")
    assert cues == [
        "1\n00:00:01,000 --> 00:00:02,500\nAna: Hello there",
        "2\n00:00:04,000 --> 00:00:04,001\nBackwards end",
    ]
    for cue in cues:
        assert re.fullmatch(r"\d+\n[\d:,]{12} --> [\d:,]{12}\n.+", cue)


def test_text_and_json() -> None:
    segments = [seg(65_000, 66_000, "Über «quotes» & <tags>"), seg(70_000, 71_000, "x", None)]
    text = exports.to_text("Title\nwith a break", segments)
    assert text == (
        "Title with a break\n\n[00:01:05] Ana: Über «quotes» & <tags>\n\n"
        "[00:01:10] Unknown speaker: x\n"
    )
    document = json.loads(exports.to_json({"slug": "abc"}, segments))
    assert document["version"] == 1 and document["speakers"] == [{"id": 1, "name": "Ana"}]
    assert document["segments"][0]["words"][0] == {
        "start_ms": 65_000,
        "end_ms": 66_000,
        "text": "Über",
        "joins": False,
    }
    assert document["segments"][1]["speaker"] is None
    # Programs can rebuild the text from the words: "4" and ",500" read "4,500".
    words = [[0, 400, "4", False], [400, 900, ",500", True]]
    amount = exports.to_json({}, [{**seg(0, 900, "4,500"), "words": words}])
    assert [w["joins"] for w in json.loads(amount)["segments"][0]["words"]] == [False, True]
