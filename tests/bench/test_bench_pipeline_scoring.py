"""How `bench/pipeline.py` scores a run (issue 13): where a speaker's WAV sits on the node's
clock, which names were heard, which knowledge items and search hits count. The benchmark's
browsers take minutes, so these pieces are checked here on made-up data, quickly; the benchmark
itself is run by hand (bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
for folder in ("bench", "tests/media"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))

from pipeline_scoring import (  # noqa: E402
    RATE,
    find_anchor,
    knowledge_scores,
    names_right,
    search_hit,
    shown_captions,
)
from pipeline_script import (  # noqa: E402
    ITEMS,
    QUERIES,
    SPEAKERS,
    TURNS,
    Item,
    items_for,
    queries_for,
)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Noise in syllable-sized bursts and pauses: a loudness contour of its own."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE), dtype=np.float32)
    at = int(0.5 * RATE)
    while at < len(out):
        burst = int(rng.uniform(0.08, 0.3) * RATE)
        out[at : at + burst] = rng.normal(0, rng.uniform(0.05, 0.3), len(out[at : at + burst]))
        at += burst + int(rng.uniform(0.05, 0.6) * RATE)
    return out


def test_anchor_finds_where_the_recording_starts_in_the_source_despite_gain_and_noise() -> None:
    source = speech_like(20, seed=1)
    lag = int(1.3 * RATE)
    rng = np.random.default_rng(2)
    recorded = 1.8 * source[lag:] + rng.normal(0, 0.002, len(source) - lag).astype(np.float32)
    anchor = find_anchor(source, recorded, started=1000.0)
    assert abs(anchor.lag_s - 1.3) <= 0.02
    assert anchor.r > 0.9
    # The WAV's 2.0 s were heard 0.7 s after the recording's first packet.
    assert abs(anchor.wall(2.0) - 1000.7) <= 0.02
    # Another speaker's audio does not match.
    other = find_anchor(speech_like(20, seed=3), recorded, started=1000.0)
    assert other.r < 0.5


def test_a_name_heard_as_another_word_is_not_right() -> None:
    scripts = {"priya": "Marcus, can you walk us through the budget? Thanks, Lena."}
    misheard = "Marques, can you walk us through the budget? Thanks, Lena."
    assert names_right(scripts, {"priya": misheard}) == 0.5
    heard = "marcus can you walk us through the budget thanks lena"
    assert names_right(scripts, {"priya": heard}) == 1.0
    assert names_right(scripts, {"priya": ""}) == 0.0


def test_knowledge_items_match_by_time_and_words_and_owners_are_checked() -> None:
    items = [
        Item("decisions", ((0, "Then we drop the second tent and put that money into sound."),)),
        Item("action_items", ((1, "I can call the hardware store before Friday."),), "marcus"),
    ]
    spans = {0: (10_000, 14_000), 1: (20_000, 24_000)}
    ids = {"priya": 1, "marcus": 2}
    knowledge = {
        "decisions": [
            # Misheard ("tend"), still the same sentence at the same time: a match.
            {
                "text": "we drop the second tend and put the money into sound",
                "start_ms": 10_200,
                "end_ms": 13_900,
            },
            # The right words at the wrong time (another turn): not a match.
            {"text": "drop the second tent money sound", "start_ms": 40_000, "end_ms": 42_000},
        ],
        "action_items": [
            {
                "text": "I can call the hardware store before Friday",
                "start_ms": 20_500,
                "end_ms": 23_000,
                "owner_id": 1,
            },
        ],
        "questions": [],
    }
    scores = knowledge_scores(knowledge, items, spans, ids)
    decisions = scores["kinds"]["decisions"]
    assert (decisions.precision, decisions.recall) == (0.5, 1.0)
    assert scores["kinds"]["action_items"].f1 == 1.0
    assert scores["owner_accuracy"] == 0.0  # found, but given to Priya, not Marcus
    assert scores["f1"] == round((2 / 3 + 1.0) / 2, 3)  # kinds with labels only
    assert knowledge_scores(None, items, spans, ids)["f1"] == 0.0


def test_a_search_hit_is_a_top_3_passage_over_a_wanted_turn() -> None:
    wanted = [(30_000, 34_000)]
    near = {"start_ms": 33_500, "end_ms": 40_000}
    far = {"start_ms": 50_000, "end_ms": 55_000}
    assert search_hit([far, far, near], wanted)
    assert not search_hit([far, far, far, near], wanted)


def test_the_script_labels_point_at_turns_that_exist_and_quick_keeps_only_its_own() -> None:
    assert all(turn < len(TURNS) for item in ITEMS for turn, _ in item.said)
    for item in ITEMS:  # every labelled sentence is said in its turn
        for turn, sentence in item.said:
            assert sentence in TURNS[turn][1], (turn, sentence)
    assert 8 <= len(QUERIES) <= 10
    assert items_for(4) and all(t < 4 for i in items_for(4) for t, _ in i.said)
    assert queries_for(4) and all(t < 4 for _, turns in queries_for(4) for t in turns)
    assert len(SPEAKERS) >= 4 and "en+f3" in {voice for _, voice in SPEAKERS.values()}


def test_a_caption_revision_takes_the_place_of_the_captions_it_covers() -> None:
    ana, ben = {"id": 1}, {"id": 2}
    captions = [
        (1.0, {"user": ana, "start_ms": 1000, "end_ms": 3000, "text": "Yes, the modern team"}),
        (1.5, {"user": ben, "start_ms": 1500, "end_ms": 2500, "text": "Right."}),
        (2.0, {"user": ana, "start_ms": 3100, "end_ms": 4000, "text": "3 hour each"}),
        (
            2.5,
            {
                "user": ana,
                "start_ms": 1000,
                "end_ms": 4000,
                "replaces": [1, 3],
                "text": "Yes, the volunteers asked for three hours each",
            },
        ),
        (3.0, {"user": ana, "start_ms": 5000, "end_ms": 6000, "text": "Not five."}),
    ]
    texts = [c["text"] for _, c in shown_captions(captions)]
    assert texts == ["Right.", "Yes, the volunteers asked for three hours each", "Not five."]
