"""Snapping a range to words, titles and captions: the pure parts of snippets."""

from __future__ import annotations

import pytest

from junto.clips import Word, captions_vtt
from junto.conversations import ConversationError
from junto.snippets import PAD_MS, clean_title, snap

# "one two three four five": 400 ms apart, each 300 ms long; a 1 s pause before "four".
WORDS = [
    Word(1000, 1300, "one", 1),
    Word(1400, 1700, "two", 1),
    Word(1800, 2100, "three", 2),
    Word(3100, 3400, "four", 2),
    Word(3500, 3800, "five", 2),
]


def test_a_range_snaps_to_the_words_it_touches() -> None:
    got = snap(WORDS, 1350, 1900)  # from the pause before "two" into "three"
    assert got is not None
    assert [w.text for w in got.words] == ["two", "three"]
    # Padded by up to PAD_MS, but only to the middle of the pause to a neighbour.
    assert got.start_ms == 1350  # "one" ends at 1300, "two" starts at 1400
    assert got.end_ms == 2100 + PAD_MS  # the pause after "three" is long


def test_padding_never_reaches_a_neighbouring_word() -> None:
    got = snap(WORDS, 1500, 1600)  # inside "two"
    assert got is not None and [w.text for w in got.words] == ["two"]
    assert got.start_ms >= 1300 and got.end_ms <= 1800
    first = snap(WORDS, 0, 1100)  # the start: padding stops at 0 and at the next word
    assert first is not None and first.start_ms == 1000 - PAD_MS and first.end_ms == 1350


def test_a_range_touching_no_word_snaps_to_nothing() -> None:
    assert snap(WORDS, 2200, 3000) is None
    assert snap([], 0, 1000) is None
    # A word is inside only if it ends after the start and starts before the end.
    got = snap(WORDS, 1300, 1400)
    assert got is None


def test_overlapping_speakers_do_not_make_negative_padding() -> None:
    overlap = [Word(1000, 2000, "a", 1), Word(1500, 2500, "b", 2), Word(2400, 3000, "c", 1)]
    got = snap(overlap, 1600, 2450)
    assert got is not None and [w.text for w in got.words] == ["a", "b", "c"]
    assert got.start_ms == 1000 - PAD_MS and got.end_ms == 3000 + PAD_MS


@pytest.mark.parametrize("title", ["x" * 201, "a\nb", "tab\there", "zero\u200bwidth", "\x1b[31m"])
def test_bad_titles_are_refused(title: str) -> None:
    with pytest.raises(ConversationError) as caught:
        clean_title(title)
    assert caught.value.status == 422 and caught.value.field == "title"


def test_titles_are_trimmed_and_empty_means_none() -> None:
    assert clean_title("  A river  ") == "A river"
    assert clean_title("   ") is None
    assert clean_title(None) is None
    assert clean_title("x" * 200) == "x" * 200


def test_captions_start_at_zero_and_escape_markup() -> None:
    words = [
        Word(5000, 5300, "<b>hi</b>", 1),
        Word(5400, 5700, "&you", 1),
        Word(5800, 6000, "x", 2),
    ]
    vtt = captions_vtt(words, 4900, 6100)
    assert vtt.startswith("WEBVTT\n\n00:00:00.100 --> 00:00:00.800\n&lt;b&gt;hi&lt;/b&gt; &amp;you")
    assert "00:00:00.900 --> 00:00:01.100\nx" in vtt  # a new speaker starts a new cue


def test_a_word_squeezed_to_nothing_is_given_its_length_back() -> None:
    # Whisper put "Rivers" at [17958, 17958] after a pause, though it was said from about 17.5 s.
    words = [
        Word(15_400, 15_950, "personal.", 2),
        Word(17_958, 17_958, "Rivers", 1),
        Word(17_958, 18_418, "brought", 1),
        Word(18_418, 18_918, "trade.", 1),
    ]
    got = snap(words, 17_958, 18_918)
    assert got is not None and [w.text for w in got.words] == ["Rivers", "brought", "trade."]
    assert got.start_ms == 17_958 - 6 * 60 - PAD_MS  # still after the middle of the pause
    assert got.start_ms > (15_950 + 17_958) // 2
