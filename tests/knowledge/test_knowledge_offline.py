"""The offline backend on a realistic transcript: what a reader of the page would check."""

from __future__ import annotations

import random
import time
from typing import Any

from knowledge_support import LIBRARY, RIVERS, said_at

from junto.knowledge.embeddings import get_embedder
from junto.knowledge.offline import extract
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
    # A request ("can you send ...?") is an action item, not a question waiting for an answer.
    assert [q.text for q in k.questions] == ["How will the city pay for the new library?"]
    assert [d.text for d in k.decisions] == ["We decided to ask the state for a grant."]
    owners = {a.text: a.owner_id for a in k.action_items}
    assert owners["I will write the letter next week."] == BEN
    assert owners["Ben, can you send the budget spreadsheet to the council before Friday?"] == BEN
    # A need of the team that nobody took on: no action item, or one that nobody owns.
    volunteers = "We need to find volunteers for the reading hours on Saturday mornings."
    assert owners.get(volunteers) is None
    # Topics name what was talked about.
    labels = " ".join(t.label.lower() for t in k.topics)
    assert 3 <= len(k.topics) <= 8
    assert ("river" in labels and "library" in labels) or "librar" in labels
    assert all(0 <= t.score <= 1 for t in k.topics)


def test_action_items_need_a_task_and_a_real_owner() -> None:
    def said(text: str, speaker: int = ANA, at: int = 0) -> Sentence:
        return Sentence(text, at, at + 1000, speaker, at)

    k = extract(
        [
            said("Is it raining today?"),
            said("Zed will bring the maps tomorrow.", ANA, 2000),
            said("I'll send the minutes to everyone tonight.", BEN, 4000),
        ],
        get_embedder(),
        PEOPLE,
    )
    owners = {a.text: (a.owner_id, a.owner) for a in k.action_items}
    assert "Is it raining today?" not in owners
    # A name that is no participant's does not make an owner.
    assert owners.get("Zed will bring the maps tomorrow.", (None, None)) == (None, None)
    assert owners["I'll send the minutes to everyone tonight."] == (BEN, "Ben Speaker")


def test_no_transcript_gives_empty_knowledge() -> None:
    k = extract([], get_embedder(), PEOPLE)
    assert k.summary == [] and k.chapters == [] and k.topics == []


def test_questions_skip_agreement_tags_and_action_items_skip_talk_about_the_talk() -> None:
    def said(text: str, speaker: int = BEN) -> Sentence:
        return Sentence(text, 0, 1000, speaker, 0)

    # Ana and Ben take turns (a question one asks and goes on to answer may be rhetorical).
    k = extract(
        [
            said("The water is cold in spring, isn't it?", ANA),
            said("It was a hard decade for the harbour, right?"),
            said("Why did the factories close so quickly?", ANA),
            said("I'll be honest with you, the budget is tight."),
            said("Let me tell you how the grant works."),
            said("I'll answer the letters from the council tomorrow."),
        ],
        get_embedder(),
        PEOPLE,
    )
    assert [q.text for q in k.questions] == ["Why did the factories close so quickly?"]
    assert [(a.text, a.owner_id) for a in k.action_items] == [
        ("I'll answer the letters from the council tomorrow.", BEN)
    ]


# Six subjects of ten minutes each, said by three people in varied sentences.
HOUR_TOPICS = {
    "rivers": ["the river", "the harbour", "the boats", "the bridges", "the fish", "the floods"],
    "library": ["the library", "the books", "the reading rooms", "the librarians", "the shelves"],
    "transport": ["the trains", "the buses", "the tickets", "the stations", "the cyclists"],
    "housing": ["the rents", "the flats", "the landlords", "the tenants", "the mortgages"],
    "schools": ["the teachers", "the pupils", "the classrooms", "the exams", "the lessons"],
    "energy": ["the solar panels", "the heat pumps", "the batteries", "the wind farms"],
}
FRAMES = [
    "I think {a} matter more than {b} here.",
    "When we look at {a}, {b} always come up.",
    "People ask me about {a} and {b} every week.",
    "The real problem with {a} is how it changes {b}.",
    "Ten years ago nobody cared about {a}, but now everyone talks about {b}.",
    "How do {a} change what happens to {b}?",
    "Our city spends a lot on {a} and too little on {b}.",
    "My neighbour complains about {a} and {b} all the time.",
]


def an_hour() -> list[Segment]:
    rng = random.Random(5)
    segments: list[Segment] = []
    t = 0
    while t < 3_600_000:
        subject = list(HOUR_TOPICS)[t // 600_000]
        words: list[list[Any]] = []
        for _ in range(rng.randint(1, 3)):
            a, b = rng.sample(HOUR_TOPICS[subject], 2)
            for w in rng.choice(FRAMES).format(a=a, b=b).split():
                words.append([t, t + 350, w])
                t += 400
        segments.append(Segment(len(segments), 1 + len(segments) % 3, words))
        t += 1500
    return segments


def test_an_hour_of_talk_has_a_chapter_per_subject() -> None:
    sentences = split(an_hour())
    embedder = get_embedder()
    embedder.embed(["warm up"])
    began = time.perf_counter()
    k = extract(sentences, embedder, {1: "Ana Host", 2: "Ben Speaker", 3: "Cy Guest"})
    took = time.perf_counter() - began
    print(f"offline extraction of one hour ({len(sentences)} sentences): {took:.2f} s")
    assert len(k.summary) == 7
    # The subject changes every ten minutes; a chapter starts within a minute of each change
    # and no subject is cut into many chapters.
    starts = [c.start_ms for c in k.chapters]
    assert 6 <= len(starts) <= 9, starts
    for change in range(600_000, 3_600_000, 600_000):
        assert any(abs(s - change) <= 60_000 for s in starts), (change, starts)
    assert len({c.title for c in k.chapters}) == len(k.chapters)


FLOODS = [
    "The river floods every spring and the town prepares for it.",
    "Sandbags are stacked along the banks in March.",
    "Old people remember the great flood of 1953.",
    "The water rose two metres in a single night.",
    "Boats rescued families from their roofs.",
    "Since then the dikes have been raised twice.",
    "Engineers say the dikes will hold for fifty years.",
    "But the river changes its course slowly.",
    "Farmers upstream lose land to the water every year.",
    "Some fields are now meadows that flood on purpose.",
    "Those meadows protect the town downstream.",
    "Birds came back to the wet meadows.",
    "Children learn about the floods at school.",
    "Every spring the fire brigade practises rescues on the river.",
    "The town museum shows photographs of the flood.",
    "The river is calm most of the year.",
    "In summer people fish from the old bridge.",
    "The floods are part of the town's story.",
]


def test_two_minutes_on_one_subject_are_one_chapter() -> None:
    segments, t = [], 0
    for seq, line in enumerate(FLOODS):
        said = line.split()
        words: list[list[Any]] = [[t + 400 * i, t + 400 * i + 350, w] for i, w in enumerate(said)]
        segments.append(Segment(seq, ANA if seq % 2 else BEN, words))
        t += 400 * (len(said) - 1) + 350 + 3000
    k = extract(split(segments), get_embedder(), PEOPLE)
    assert len(k.chapters) == 1, [(c.title, c.start_ms) for c in k.chapters]
    assert "flood" in k.chapters[0].title.lower()
    assert any("flood" in topic.label.lower() for topic in k.topics)


def test_a_title_does_not_end_a_sentence_and_a_surname_names_an_owner() -> None:
    words = [
        [400 * i, 400 * i + 350, w]
        for i, w in enumerate("Thanks, Ana. Dr. Okafor will send the flood maps on Monday.".split())
    ]
    sentences = split([Segment(0, ANA, words)])
    assert [s.text for s in sentences] == [
        "Thanks, Ana.",
        "Dr. Okafor will send the flood maps on Monday.",
    ]
    assert sentences[1].start_ms == 800
    people = {**PEOPLE, 3: "Grace Okafor"}
    k = extract(sentences, get_embedder(), people)
    owners = {a.text: (a.owner_id, a.owner) for a in k.action_items}
    assert owners["Dr. Okafor will send the flood maps on Monday."] == (3, "Grace Okafor")
