"""The offline backend on a realistic transcript: what a reader of the page would check."""

from __future__ import annotations

import time

from knowledge_support import LIBRARY, RIVERS, said_at

from junto.knowledge.embeddings import get_embedder
from junto.knowledge.offline import action_item, extract
from junto.knowledge.sentences import Segment, Sentence, split

ANA, BEN = 1, 2
PEOPLE = {ANA: "Ana Host", BEN: "Ben Speaker"}


def transcript() -> list[Segment]:
    segments = []
    for seq, (speaker, at, line) in enumerate(said_at()):
        start = round(at * 1000)
        words = [[start + 400 * i, start + 400 * i + 350, w] for i, w in enumerate(line.split())]
        segments.append(Segment(seq, ANA if speaker == "ana" else BEN, words))
    return segments


def test_sentences_keep_their_speaker_and_exact_times() -> None:
    sentences = split(transcript())
    first, second = sentences[0], sentences[1]
    assert (first.text, first.start_ms, first.speaker_id) == ("Welcome to the stage.", 0, ANA)
    assert second.text.startswith("Today we talk") and second.start_ms == 1600
    assert sum(s.text.count(" ") + 1 for s in sentences) == sum(
        len(line.split()) for _, line in RIVERS + LIBRARY
    )


def test_the_offline_knowledge_of_a_two_topic_conversation() -> None:
    sentences = split(transcript())
    began = time.perf_counter()
    k = extract(sentences, get_embedder(), PEOPLE)
    print(f"offline extraction of {len(sentences)} sentences: {time.perf_counter() - began:.2f} s")
    said = {s.text for s in sentences}
    # The summary is made of sentences that were said, in time order, 3 to 7 of them.
    assert 3 <= len(k.summary) <= 7
    assert all(m.text in said for m in k.summary)
    assert [m.start_ms for m in k.summary] == sorted(m.start_ms for m in k.summary)
    # Two chapters: the topic changes where the library talk begins.
    library_starts = next(s.start_ms for s in sentences if s.text.startswith("Let us talk"))
    assert len(k.chapters) == 2, [c.title for c in k.chapters]
    assert abs(k.chapters[1].start_ms - library_starts) <= 12_000
    assert k.chapters[0].start_ms == 0 and k.chapters[-1].end_ms == sentences[-1].end_ms
    assert all(c.title for c in k.chapters)
    # The question, the decision and the action items with their owners.
    assert [q.text for q in k.questions] == [
        "How will the city pay for the new library?",
        "Ben, can you send the budget spreadsheet to the council before Friday?",
    ]
    assert [d.text for d in k.decisions] == ["We decided to ask the state for a grant."]
    owners = {a.text: a.owner_id for a in k.action_items}
    assert owners["I will write the letter next week."] == BEN
    assert owners["Ben, can you send the budget spreadsheet to the council before Friday?"] == BEN
    assert owners["We need to find volunteers for the reading hours on Saturday mornings."] is None
    # Topics name what was talked about.
    labels = " ".join(t.label.lower() for t in k.topics)
    assert 3 <= len(k.topics) <= 8
    assert ("river" in labels and "library" in labels) or "librar" in labels
    assert all(0 <= t.score <= 1 for t in k.topics)


def test_action_items_need_a_task_and_a_real_owner() -> None:
    def said(text: str, speaker: int = ANA) -> Sentence:
        return Sentence(text, 0, 1000, speaker, 0)

    assert action_item(said("I will."), PEOPLE) is None
    assert action_item(said("Is it raining today?"), PEOPLE) is None
    # A name that is no participant's does not make an owner.
    zed = action_item(said("Zed will bring the maps tomorrow."), PEOPLE)
    assert zed is None or zed.owner_id is None
    mine = action_item(said("I'll send the minutes to everyone tonight.", BEN), PEOPLE)
    assert mine is not None and mine.owner_id == BEN and mine.owner == "Ben Speaker"


def test_no_transcript_gives_empty_knowledge() -> None:
    k = extract([], get_embedder(), PEOPLE)
    assert k.summary == [] and k.chapters == [] and k.topics == []
