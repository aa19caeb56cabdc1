"""A participant's name that Whisper wrote as a commoner one ("Thomas" for Tomas) is written
as they write it in the transcript, and only where the word reads as a name."""

from __future__ import annotations

from transcripts_support import World, words_at, world_fixture  # noqa: F401

from junto.enums import JobState, Role
from junto.transcripts import merge
from junto.transcripts.names import respell_names, sound_key

PEOPLE = ["Tomas Eriksen", "Katya Ivanova", "Priya Nair", "Will Ng"]


def said(text: str, user_id: int = 1) -> list[merge.TimedWord]:
    return merge.timeline_words([merge.Piece(user_id, 0, words_at(0.0, text))])


def respelled(text: str) -> str:
    return " ".join(w.text for w in respell_names(said(text), PEOPLE))


def test_names_that_sound_like_a_participants_are_written_as_theirs() -> None:
    assert sound_key("Thomas") == sound_key("Tomas")
    assert sound_key("Katia") == sound_key("Katya")
    assert respelled("Okay so Thomas will send the draft.") == "Okay so Tomas will send the draft."
    assert respelled("Thomas, could you send it?") == "Tomas, could you send it?"
    assert respelled("I asked Katia and Thomas.") == "I asked Katya and Tomas."
    # Times, speakers and word joins stay as they were.
    before, after = said("ask Thomas now"), respell_names(said("ask Thomas now"), PEOPLE)
    assert [(w.start_ms, w.end_ms, w.user_id) for w in before] == [
        (w.start_ms, w.end_ms, w.user_id) for w in after
    ]


def test_words_that_do_not_read_as_a_name_keep_their_spelling() -> None:
    # A sentence's first word (no comma after it), a lower-case word, someone else's name.
    assert respelled("Thomas said so. Thomas Edison did too.") == (
        "Thomas said so. Thomas Edison did too."
    )
    assert respelled("the tomas sauce") == "the tomas sauce"
    assert respelled("we met Tom and Thomasina") == "we met Tom and Thomasina"
    # A short name ("Will", three letters keyed) is never a target: "Will" stays a word.
    assert respelled("So Wil said it.") == "So Wil said it."
    # Two participants who sound alike: nobody's name is guessed.
    words = respell_names(said("ask Thomas"), ["Tomas A", "Thomas B", "Tommas C"])
    assert [w.text for w in words] == ["ask", "Thomas"]


async def test_the_built_transcript_spells_the_participants_names(world: World) -> None:
    tomas = await world.member("tomas", "Tomas Eriksen")
    priya = await world.member("priya", "Priya Nair")
    conv = await world.ended_conversation(priya)
    await world.add_participant(conv, tomas, Role.SPEAKER)
    await world.add_piece(conv, priya, 0.0, words_at(0.0, "Thomas, can you book the hall?"))
    await world.add_piece(conv, tomas, 4.0, words_at(0.0, "Yes, I will."))

    assert await world.run_jobs("transcript.build") == 1
    (build,) = await world.jobs("transcript.build")
    assert build.state == JobState.SUCCEEDED, build.error
    body = (await priya.client.get(f"/api/conversations/{conv.slug}/transcript")).json()
    assert [s["text"] for s in body["segments"]] == [
        "Tomas, can you book the hall?",
        "Yes, I will.",
    ]
