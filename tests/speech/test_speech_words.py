"""Whisper's word pieces joined into text that reads right ("$4,500", "12%", "US-based") in every
place text is built from words: the merged transcript, knowledge sentences, search passages,
snippet captions and the interactive transcript page's word spans."""

from __future__ import annotations

from typing import Any

from junto.clips import Word, captions_vtt
from junto.knowledge.sentences import Segment as SentenceSegment
from junto.knowledge.sentences import split
from junto.search.passages import cut
from junto.speech.words import attaches, flags, join_pieces, join_stored, join_words
from junto.transcripts import merge

# What faster-whisper 1.2.1 with tiny.en gives (word_timestamps=True) for espeak-ng saying "It
# costs four thousand five hundred dollars, about twelve percent more. The U.S.-based team grew
# by 25 percent." (measured): each new word carries its leading space, continuations none.
PIECES = [" It", " costs", " 4", ",500", " dollars,", " about", " 12", "%", " more."]
PIECES_2 = [" The", " US", "-based", " team", " grew", " by", " 25%."]
READ = "It costs 4,500 dollars, about 12% more."
READ_2 = "The US-based team grew by 25%."
# Other shapes Whisper produces: a currency sign inside the word, decimals, a quoted word.
PIECES_3 = [" We", " paid", " $4", ",500", " (", "about", " €3", ".5", "k)", " for", " '", "it'."]
READ_3 = "We paid $4,500 (about €3.5k) for 'it'."


def whisper_track(pieces: list[str], start_s: float = 0.0) -> list[list[Any]]:
    """A TrackTranscript's words as the transcript.track job stores them."""
    return [[start_s + i * 0.3, start_s + i * 0.3 + 0.25, p, 0.9] for i, p in enumerate(pieces)]


def stripped(pieces: list[str]) -> list[str]:
    """Words as stored before the leading spaces were kept."""
    return [p.strip() for p in pieces]


def test_whisper_pieces_join_as_whisper_meant() -> None:
    assert join_pieces(PIECES) == READ
    assert join_pieces(PIECES_2) == READ_2
    assert join_pieces(PIECES_3) == READ_3
    assert join_pieces([]) == ""
    assert join_pieces([" ", " Hello", "  "]) == "Hello"


def test_words_stored_without_their_spaces_fall_back_to_rules() -> None:
    unknown = [(w, None) for w in stripped(PIECES + PIECES_2)]
    assert join_words(unknown) == f"{READ} {READ_2}"
    assert join_words((w, None) for w in ["It's", "(", "roughly", ")", "$", "5", "-", "ok"]) == (
        "It's (roughly) $5 - ok"
    )
    assert attaches("4", ",500") and attaches("0", ".5") and attaches("12", "%")
    assert attaches("$", "4") and attaches("(", "see") and attaches("US", "-based")
    assert not attaches("well", "-") and not attaches("well", "--") and not attaches("", ",")


def test_a_known_flag_wins_over_the_rules() -> None:
    # Whisper said the quote opens a new word: the rules alone would glue it to "for".
    assert join_words([("for", None), ("'it'", None)]) == "for'it'"
    assert join_words([("for", False), ("'it'", False)]) == "for 'it'"


def test_the_merged_transcript_reads_amounts_right_for_new_and_old_tracks() -> None:
    track = whisper_track(PIECES + PIECES_2)
    new = merge.Piece(1, 0, track)
    (segment,) = merge.segments(merge.timeline_words([new]))
    assert segment.text == f"{READ} {READ_2}"
    # What the segment stores says which words attach, so pages can show them one by one.
    entries = segment.entries()
    assert [e[2] for e in entries][:4] == ["It", "costs", "4", ",500"]
    assert [e[3] for e in entries][:4] == [False, False, False, True]

    old = merge.Piece(2, 60_000, [[e[0], e[1], e[2].strip(), e[3]] for e in track])
    (old_segment,) = merge.segments(merge.timeline_words([old]))
    assert old_segment.text == f"{READ} {READ_2}"


def test_sentences_passages_and_stored_segments_read_amounts_right() -> None:
    (segment,) = merge.segments(merge.timeline_words([merge.Piece(1, 0, whisper_track(PIECES))]))
    sentences = split([SentenceSegment(0, 1, segment.entries())])
    assert [s.text for s in sentences] == [READ]
    # Segments built before the flag was stored: [start_ms, end_ms, word].
    old = [[i * 300, i * 300 + 250, w] for i, w in enumerate(stripped(PIECES + PIECES_2))]
    assert [s.text for s in split([SentenceSegment(1, 1, old)])] == [READ, READ_2]
    assert join_stored(old) == f"{READ} {READ_2}"
    assert [p.text for p in cut(split([SentenceSegment(0, 1, segment.entries())]))] == [READ]


def test_snippet_captions_read_amounts_right_and_never_split_a_number() -> None:
    # Five words first, so that ",500" comes just when a cue is full (clips.CUE_WORDS = 8).
    said = [" So", " well", " you", " see", " now", *PIECES, *PIECES_2]
    words = [
        Word(i * 300, i * 300 + 250, p.strip(), 7, joins=not p.startswith(" ") and i > 0)
        for i, p in enumerate(said)
    ]
    vtt = captions_vtt(words, 0, 10_000)
    cues = [line for line in vtt.split("\n") if line and "-->" not in line and line != "WEBVTT"]
    assert " ".join(cues) == f"So well you see now {READ} {READ_2}"
    assert not any(cue.startswith((",", "%", "-")) for cue in cues), cues
    # Old words without flags: the rules keep "4" and ",500" in one cue too.
    old = [Word(w.start_ms, w.end_ms, w.text, 7) for w in words]
    assert captions_vtt(old, 0, 10_000) == vtt


def test_the_page_puts_a_space_only_between_words() -> None:
    entries = merge.segments(merge.timeline_words([merge.Piece(1, 0, whisper_track(PIECES))]))
    shown = entries[0].entries()
    spaced = "".join(
        ("" if joins or i == 0 else " ") + str(e[2])
        for i, (e, joins) in enumerate(zip(shown, flags(shown), strict=True))
    )
    assert spaced == READ
    old = [[e[0], e[1], e[2]] for e in shown]
    assert flags(old) == flags(shown)
