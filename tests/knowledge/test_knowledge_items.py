"""Questions, decisions and action items as a reader of a meeting's page expects them (issue 13):
owners from names said in lower case, offers, suggestions nobody took, decisions said as a
summary, questions Whisper ended with a full stop; and bad input that must not crash."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from junto.knowledge import dataset, evaluate, items, owners, train
from junto.knowledge.embeddings import get_embedder
from junto.knowledge.model import Knowledge
from junto.knowledge.offline import extract
from junto.knowledge.sentences import Segment, Sentence, split

MAYA, TOM, PRIYA = 1, 2, 3
TEAM = {MAYA: "Maya Chen", TOM: "Tom Okafor", PRIYA: "Priya Nair"}


def said(lines: list[tuple[int, str]], people: dict[int, str] = TEAM) -> Knowledge:
    """The offline knowledge of `lines` (speaker id, sentence), one after the other."""
    sentences, t = [], 0
    for seq, (speaker, text) in enumerate(lines):
        sentences.append(Sentence(text, t, t + 2000, speaker, seq))
        t += 2600
    return extract(sentences, get_embedder(), people)


def owner_of(k: Knowledge, text: str) -> int | None:
    (item,) = [a for a in k.action_items if a.text == text]
    return item.owner_id


def test_a_lower_case_name_owns_what_it_is_told_to_do() -> None:
    k = said(
        [
            (MAYA, "the client called again this morning about the march invoice."),
            (TOM, "okay so maya you'll send the invoice by friday."),
            (MAYA, "yeah, friday works."),
        ]
    )
    assert owner_of(k, "okay so maya you'll send the invoice by friday.") == MAYA
    assert [a.owner for a in k.action_items if a.owner_id == MAYA] == ["Maya Chen"]


def test_an_offer_is_the_speakers_action_item() -> None:
    k = said(
        [
            (MAYA, "the offsite is in three weeks and we still don't have a place."),
            (TOM, "I can take care of the venue."),
            (MAYA, "oh great, thanks."),
        ]
    )
    assert owner_of(k, "I can take care of the venue.") == TOM


def test_a_suggestion_nobody_took_has_no_owner() -> None:
    k = said(
        [
            (PRIYA, "the dashboard takes like ten seconds to load now."),
            (TOM, "we should probably look at caching."),
            (MAYA, "yeah, maybe after the release."),
        ]
    )
    # Either not an action item, or one nobody owns: never one with an invented owner.
    assert all(
        a.owner_id is None and a.owner is None
        for a in k.action_items
        if a.text == "we should probably look at caching."
    )


def test_a_decision_said_as_a_summary() -> None:
    k = said(
        [
            (MAYA, "mysql or postgres, we need to pick one today."),
            (TOM, "postgres, we already run it for billing."),
            (PRIYA, "that's settled then, we go with postgres."),
            (MAYA, "fine by me."),
        ]
    )
    assert "that's settled then, we go with postgres." in [d.text for d in k.decisions]


def test_a_request_that_whisper_ended_with_a_full_stop() -> None:
    k = said(
        [
            (TOM, "the deploy failed again last night, no idea why."),
            (MAYA, "can you check the logs."),
            (TOM, "sure, give me ten minutes."),
        ]
    )
    asked = "can you check the logs."
    assert asked in [q.text for q in k.questions] + [a.text for a in k.action_items]
    # As a request, it is the person asked who does it: the previous speaker.
    if asked in [a.text for a in k.action_items]:
        assert owner_of(k, asked) == TOM


def test_owners_of_a_request_after_a_thanks_and_of_a_bare_instruction() -> None:
    """ "that's fine tom, priya would you ..." asks Priya, not Tom whose name came first;
    "tell them ..." said right after someone spoke is theirs to do, not the speaker's."""
    sentences = [
        Sentence("I can't run the stall this year, my back is bad.", 0, 2000, TOM, 0),
        Sentence(
            "that's quite all right tom, priya would you mind doing the stall.", 2600, 4600, MAYA, 1
        ),
        Sentence("not at all.", 5200, 6000, PRIYA, 2),
        Sentence("the client asked whether we still hand over in june.", 6600, 8600, PRIYA, 3),
        Sentence("tell them june is still the plan but it's tight.", 9200, 11200, MAYA, 4),
    ]
    takes = {0: False, 1: True, 2: True, 3: False, 4: True}
    assert owners.owner(sentences, 1, TEAM, takes) == PRIYA
    assert owners.owner(sentences, 4, TEAM, takes) == PRIYA


def test_saying_you_will_not_do_something_is_no_action_item() -> None:
    k = said(
        [
            (MAYA, "who can do the review on monday?"),
            (TOM, "I will not be around on monday, I'm at the conference."),
            (PRIYA, "I'll take it then."),
        ]
    )
    assert "I will not be around on monday, I'm at the conference." not in [
        a.text for a in k.action_items
    ]
    assert owner_of(k, "I'll take it then.") == PRIYA


def test_nothing_said_gives_empty_items() -> None:
    k = extract([], get_embedder(), TEAM)
    assert k.questions == [] and k.decisions == [] and k.action_items == [] and k.summary == []
    # A silent track: segments whose words are empty, as a recognizer gives for silence.
    silent = split([Segment(0, MAYA, [[0, 500, ""], [500, 900, " "]])])
    assert silent == []
    assert extract(silent, get_embedder(), TEAM).action_items == []


def test_odd_and_empty_participant_names_do_not_break_owners() -> None:
    people = {1: "", 2: "   ", 3: "🦊", 4: "x", 5: "Dr.", 6: "Ana Host"}
    k = said(
        [
            (6, "the report is due next week and nobody has started it."),
            (1, "I'll write the first draft tomorrow."),
            (3, "ana, could you send me the figures from last year."),
            (6, "sure."),
        ],
        people,
    )
    owners = {a.text: a.owner_id for a in k.action_items}
    assert owners.get("I'll write the first draft tomorrow.") in (1, None)
    assert owners.get("ana, could you send me the figures from last year.") in (6, None)
    assert all(a.owner_id in (*people, None) for a in k.action_items)


def test_the_labelled_set_is_large_varied_and_keeps_a_held_out_part() -> None:
    meetings = dataset.meetings()
    total = sum(len(m.sentences) for m in meetings)
    held = sum(len(m.sentences) for m in meetings if m.split == "heldout")
    # The held-out part stays the same 264 sentences as training meetings are added: its
    # size, not its share, is what makes its figures worth reading (the share fell from 24 %
    # to 15 % with the third round of training meetings, and under 15 % with the fourth).
    assert total >= 400 and held >= 250 and held / total >= 0.10
    assert len({m.style for m in meetings}) >= 10
    rows = dataset.rows("heldout")
    assert len(rows) == held and {"prev_text", "next_speaker", "owner"} <= set(rows[0])


def test_the_shipped_classifier_finds_items_in_meetings_it_never_saw() -> None:
    assert items.load_model().weights.shape[0] == len(items.KINDS)
    held_out = dataset.meetings("heldout")
    ours = evaluate.score(held_out, evaluate.classifier(get_embedder()))
    cues = evaluate.score(held_out, evaluate.baseline)
    # Floors under what was measured (bench/knowledge.py: 0.85, 0.77, 0.85, owners 98 %), and
    # above the cue phrases for every kind.
    for kind, floor in (("questions", 0.7), ("decisions", 0.65), ("actions", 0.75)):
        assert ours.kinds[kind].f1 >= floor, (kind, ours.kinds[kind])
        assert ours.kinds[kind].f1 > cues.kinds[kind].f1
    assert ours.owner_accuracy >= 0.9


def test_the_summary_leads_with_what_was_decided_and_promised_not_fragments() -> None:
    lines = [
        (MAYA, "um so yeah the the pricing thing, you know."),
        (TOM, "uh yeah pricing, right, I mean, the pricing."),
        (PRIYA, "the pricing page gets most of its visits from people on phones."),
        (MAYA, "so the pricing, yeah, um, you know, the page."),
        (TOM, "people on phones leave the pricing page after a few seconds."),
        (PRIYA, "the old pricing page was designed for large desktop screens."),
        (MAYA, "okay, that's settled then, the new pricing page ships on monday."),
        (TOM, "I'll write the release note for the pricing page tonight."),
        (PRIYA, "uh, pricing, the, um, yeah."),
    ]
    k = said(lines)
    summary = [m.text for m in k.summary]
    # A fragment of fillers around a word or two is most often misheard: never in the summary.
    for fragment in (lines[0][1], lines[1][1], lines[3][1], lines[8][1]):
        assert fragment not in summary
    assert "okay, that's settled then, the new pricing page ships on monday." in summary
    assert "I'll write the release note for the pricing page tonight." in summary


def test_training_again_gives_the_shipped_weights() -> None:
    """`python -m junto.knowledge.train` made the shipped weights: fitted again on the train
    meetings with the regularisation it chose, each kind's classifier is the same (the
    cross-validation that chose it is deterministic too, and slow: not repeated here)."""
    table = train.table(dataset.meetings("train"), get_embedder())
    mean, scale = train.standardise(table.x)
    shipped = items.load_model()
    assert np.allclose(mean, shipped.mean, atol=1e-4)
    assert np.allclose(scale, shipped.scale, rtol=1e-3)
    path = resources.files("junto.knowledge") / "data" / items.MODEL_FILE
    with resources.as_file(path) as file, np.load(file) as data:
        lambdas = data["lambdas"]
    for kind in range(len(items.KINDS)):
        w, b = train.fit((table.x - mean) / scale, table.y[:, kind], float(lambdas[kind]))
        assert np.allclose(w, shipped.weights[kind], atol=1e-3)
        assert abs(b - float(shipped.bias[kind])) < 1e-3


def test_a_choice_taken_in_passing_and_a_question_without_its_form_are_found() -> None:
    """Decisions said as "X it is" after a question nobody argued with, and questions said as
    "I wonder whether ..." with a full stop: both were missed before the second round of
    training meetings (the decisions' recall on held-out was 0.55)."""
    k = said(
        [
            (MAYA, "okay, the team dinner, the thai place or the pizza place."),
            (TOM, "thai, the pizza place was loud last time."),
            (PRIYA, "thai works for me."),
            (MAYA, "fine, thai it is, thursday at seven."),
            (TOM, "I wonder whether we need to book a table for that many people."),
            (PRIYA, "probably, it's a small place."),
        ]
    )
    assert [d.text for d in k.decisions] == ["fine, thai it is, thursday at seven."]
    assert "I wonder whether we need to book a table for that many people." in [
        q.text for q in k.questions
    ]


def test_a_proposal_taken_up_is_decided_where_taken_up_and_a_refusal_of_the_group_too() -> None:
    """A proposal ("i'd say friday") becomes a decision when the others take it up: the
    summing up after the agreement is the decision, the proposal is not (the model before the
    fourth round of training meetings called both decisions). A decision not to do something,
    said as the group's plan ("we're not replacing ..."), is found (it was missed)."""
    k = said(
        [
            (MAYA, "the team lunch, friday or next week"),
            (TOM, "i'd say friday, half the team is away next week"),
            (PRIYA, "agreed"),
            (MAYA, "friday it stays then"),
        ]
    )
    assert [d.text for d in k.decisions] == ["friday it stays then"]
    k = said(
        [
            (MAYA, "and the colour printer upstairs."),
            (PRIYA, "honestly nobody uses it."),
            (MAYA, "we're not replacing that one this year."),
            (TOM, "fair enough."),
        ]
    )
    assert [d.text for d in k.decisions] == ["we're not replacing that one this year."]


def test_a_refusal_said_as_a_fragment_is_decided_and_the_meetings_opening_is_not() -> None:
    """The chair's "no vending machine, come on" settles it (the model before the fifth round
    of training meetings missed such fragments); opening the meeting ("ok quick one tonight,
    let's keep it short") and closing it decide nothing (it called such lines decisions)."""
    k = said(
        [
            (MAYA, "ok quick one tonight let's keep it short the hall closes at nine"),
            (TOM, "people keep asking for a vending machine in the hall"),
            (PRIYA, "there's literally nowhere to put one"),
            (MAYA, "no vending machine come on"),
            (TOM, "haha fair"),
            (MAYA, "right that's it thanks everyone"),
        ]
    )
    assert [d.text for d in k.decisions] == ["no vending machine come on"]


@pytest.mark.parametrize("weights", ["missing", "garbage"])
def test_without_readable_weights_the_cue_phrases_still_find_items(
    weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A node whose weights file was lost or damaged still publishes knowledge: the cue
    phrases find what they can, and the log says why the classifier was not used."""
    path = tmp_path / items.MODEL_FILE
    if weights == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip archive")
    # An absolute file name replaces the package's data folder in load_model's path.
    monkeypatch.setattr(items, "MODEL_FILE", str(path))
    items.load_model.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="junto.knowledge"):
            k = said(
                [
                    (MAYA, "which venue did we book for the offsite?"),
                    (TOM, "we decided to go with the lake house."),
                    (PRIYA, "I'll send everyone the address tonight."),
                ]
            )
    finally:
        items.load_model.cache_clear()
    assert [q.text for q in k.questions] == ["which venue did we book for the offsite?"]
    assert [d.text for d in k.decisions] == ["we decided to go with the lake house."]
    assert [(a.text, a.owner_id) for a in k.action_items] == [
        ("I'll send everyone the address tonight.", PRIYA)
    ]
    assert "cue phrases" in k.model
    assert any("cue phrases" in r.getMessage() for r in caplog.records)
